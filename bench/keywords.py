"""Keyword routing time with 10, 1,000 and 10,000 active templates (5 keywords each).

Two figures per size, sizes interleaved and repeated so machine noise hits them alike:

- ``index``: ``TemplateSet.keywords`` (conversation/keywords.py) answering a mix of
  messages (a keyword alone, a keyword inside a sentence, no keyword, a long message);
- ``worker``: what a worker does to route one message on Postgres: a fresh session,
  ``ConversationService.template_set()`` (the per-message revision check against
  ``workflow_templates``, then the cached set) and the same lookups.

Templates are copies of the shipped ``support`` flow with unique keywords, inserted
straight into the table (loading 10,000 through the linter is not what is measured).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session, sessionmaker

from bench.common import ROOT, BenchDatabase, RunConfig, log, ratio, sqlalchemy_url, write_json
from conversation.models import WorkflowTemplate, utcnow
from conversation.service import TEMPLATE_CACHE
from conversation.state import TemplateSet
from templates.loader import load_file
from templates.schema import TemplateDef

KEYWORDS_PER_TEMPLATE = 5


def definitions(n: int) -> list[TemplateDef]:
    base, errors = load_file(ROOT / "templates" / "support.yaml")
    assert base is not None, errors
    return [
        base.model_copy(
            update={
                "template_name": f"bench_t{i}",
                "trigger_keywords": [f"kw{i}x{j}" for j in range(KEYWORDS_PER_TEMPLATE)],
            }
        )
        for i in range(n)
    ]


def messages(n: int) -> list[str]:
    last = n - 1
    return [
        f"kw{last}x3",  # a keyword alone
        f"Hello, I would like kw{n // 2}x1 for two people please",  # a keyword inside a sentence
        "what time do you open tomorrow?",  # no keyword
        " ".join(f"word{i}" for i in range(40)),  # a long message, no keyword
    ]


def route(templates: TemplateSet, texts: list[str]) -> None:
    for text in texts:
        templates.keywords.exact(text)
        templates.keywords.search(text)


def seconds_per_call(fn: Callable[[], None], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def fill(db: BenchDatabase, defs: list[TemplateDef]) -> None:
    engine = create_engine(sqlalchemy_url(db.url))
    now = utcnow()
    rows = []
    for d in defs:
        dumped = d.model_dump(mode="json", exclude_none=True)
        rows.append(
            {
                "id": uuid.uuid4(),
                "template_name": d.template_name,
                "template_type": d.template_type,
                "trigger_keywords": list(d.trigger_keywords),
                "menu_structure": dumped["menu_structure"],
                "options": {},
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(insert(WorkflowTemplate), rows[start : start + 1000])
    engine.dispose()


def run(config: RunConfig) -> dict[str, Any]:
    sizes = config.keyword_sizes
    reps = config.keyword_reps
    sets: dict[int, TemplateSet] = {}
    build_seconds: dict[int, float] = {}
    dbs: dict[int, BenchDatabase] = {}
    factories: dict[int, sessionmaker[Session]] = {}
    cache_build: dict[int, float] = {}
    try:
        for n in sizes:
            defs = definitions(n)
            started = time.perf_counter()
            sets[n] = TemplateSet({d.template_name: d for d in defs})
            build_seconds[n] = time.perf_counter() - started
            dbs[n] = BenchDatabase.create(flows=False)
            fill(dbs[n], defs)
            engine = create_engine(sqlalchemy_url(dbs[n].url))
            factories[n] = sessionmaker(engine, expire_on_commit=False)
            started = time.perf_counter()
            with factories[n]() as session:
                TEMPLATE_CACHE.get(session)  # first call builds and caches the set
            cache_build[n] = time.perf_counter() - started
            log(f"keywords: {n} templates ready (index built in {build_seconds[n]:.2f} s)")
        index_times: dict[int, list[float]] = {n: [] for n in sizes}
        worker_times: dict[int, list[float]] = {n: [] for n in sizes}
        for _ in range(reps):
            for n in sizes:
                texts = messages(n)
                templates = sets[n]
                per_call = seconds_per_call(lambda t=templates, x=texts: route(t, x), 500)
                index_times[n].append(per_call / len(texts))

                def worker_route(n: int = n, texts: list[str] = texts) -> None:
                    for text in texts:
                        with factories[n]() as session, session.begin():
                            ts = TEMPLATE_CACHE.get(session)
                            ts.keywords.exact(text)
                            ts.keywords.search(text)

                worker_times[n].append(seconds_per_call(worker_route, 50) / len(texts))
        for n in sizes:
            factories[n].kw["bind"].dispose()
    finally:
        for db in dbs.values():
            db.close()
    small, big = sizes[0], sizes[-1]
    rows = {
        str(n): {
            "templates": n,
            "keywords": n * KEYWORDS_PER_TEMPLATE,
            "index_us": round(statistics.median(index_times[n]) * 1e6, 2),
            "worker_us": round(statistics.median(worker_times[n]) * 1e6, 1),
            "index_build_s": round(build_seconds[n], 3),
            "cache_rebuild_s": round(cache_build[n], 3),
        }
        for n in sizes
    }
    summary = {
        "rows": rows,
        "index_ratio_big_to_small": ratio(rows[str(big)]["index_us"], rows[str(small)]["index_us"]),
        "worker_ratio_big_to_small": ratio(rows[str(big)]["worker_us"], rows[str(small)]["worker_us"]),
        "messages": messages(big),
        "repetitions": reps,
    }
    log(f"keywords: {summary['rows']}")
    results = {"summary": summary, "raw_index_s": index_times, "raw_worker_s": worker_times}
    write_json("keywords", results)
    return results
