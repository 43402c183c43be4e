"""Search: p50/p99 latency of `GET /api/search` through the real gateway → sessions + chat (gRPC) → Elasticsearch
at 10 000 and 100 000 transcript paragraphs, against the same Elasticsearch query sent directly from this process
(the baseline: what the hop through gateway and owners adds); and the indexing rate through the search outbox.

The system is started as the runner does (`redis`, `elasticsearch` — the local Maven Central distribution, 512 MB
heap —, `sessions`, `chat`, `gateway`, authentication on), in a temporary folder on free ports. Paragraphs are
written into the sessions database with the service's own storage layer (`replace_paragraphs`, which records the
search-outbox entries in the same transaction, as the transcriber does: 100 paragraphs of ~25 words per session);
the running sessions service's indexer applies them. Indexing rate = documents / (first commit → outbox empty and
every document searchable). Queries: one or two words drawn from the corpus vocabulary, `limit=50` (what the UI
asks), `searchType=all` (the UI default: both owners are asked). Rounds alternate gateway/baseline (the order
flips each round); every figure is the median over the rounds.

    .venv/bin/python bench/search.py [--sizes 10000 100000] [--rounds 5] [--requests 100]
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from results import result

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests" / "support")]

import therascript_local  # noqa: E402
from servers import free_port  # noqa: E402

SPECS = ("redis", "elasticsearch", "sessions", "chat", "gateway")
PER_SESSION = 100
VOCABULARY = (
    "anxiety", "sleep", "work", "family", "sister", "brother", "mother", "father", "argument", "calm",
    "breathing", "panic", "worry", "therapy", "session", "week", "morning", "evening", "friends", "colleague",
    "deadline", "project", "exercise", "walking", "running", "journal", "thoughts", "feelings", "anger",
    "sadness", "relief", "progress", "setback", "goal", "habit", "routine", "coffee", "dinner", "weekend",
    "holiday", "travel", "money", "debt", "rent", "landlord", "neighbour", "dog", "cat", "garden", "music",
    "reading", "writing", "meditation", "grounding", "avoidance", "confidence", "shame", "guilt", "pride",
    "support", "boundaries", "conflict"
)
FILLER = (
    "so", "I", "was", "and", "then", "it", "felt", "like", "the", "we", "had", "a", "but", "really", "just",
    "because", "when", "you", "know"
)


def sentence(rng: random.Random) -> str:
    words = [rng.choice(VOCABULARY) if rng.random() < 0.35 else rng.choice(FILLER) for _ in range(25)]
    return " ".join(words).capitalize() + "."


def seed(database_url: str, sessions: int, first: int, rng: random.Random) -> None:
    """`sessions` completed sessions of PER_SESSION paragraphs, committed 20 sessions per transaction."""
    from therascript_sessions.storage.database import Database
    from therascript_sessions.storage.tables import SessionRow
    from therascript_sessions.transcription.paragraphs import ParagraphDraft
    from therascript_sessions.transcripts import replace_paragraphs

    db = Database(database_url)
    for start in range(0, sessions, 20):
        with db.transaction() as session:
            for i in range(first + start, first + min(start + 20, sessions)):
                row = SessionRow(file_name=f"s{i}.wav", client_name=f"Client {i % 50}", session_name=f"Session {i}",
                                 date="2026-01-15T12:00:00.000Z", session_type="Individual", therapy="CBT",
                                 status="completed", show_speakers=1, num_speakers=2, created_at_ms=1_700_000_000_000)
                session.add(row)
                session.flush()
                replace_paragraphs(session, row.id, [ParagraphDraft(k, k * 7_500, sentence(rng), f"SPEAKER_0{k % 2}")
                                                     for k in range(PER_SESSION)])
    db.dispose()


def wait_indexed(database_url: str, es_url: str, alias: str, expected: int, timeout_s: float = 1800) -> None:
    from elasticsearch import Elasticsearch
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    client = Elasticsearch(es_url, request_timeout=30)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            pending = connection.execute(text("SELECT count(*) FROM search_outbox")).scalar()
        if not pending:
            client.indices.refresh(index=alias)
            if client.count(index=alias)["count"] == expected:
                engine.dispose()
                return
        time.sleep(0.5)
    raise SystemExit(f"not indexed after {timeout_s} s")


def percentiles(latencies: list[float]) -> tuple[float, float]:
    latencies = sorted(latencies)
    return 1000 * latencies[len(latencies) // 2], 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * .99))]


def via_gateway(client: httpx.Client, queries: list[str]) -> list[float]:
    out = []
    for query in queries:
        started = time.perf_counter()
        response = client.get("/api/search", params={"q": query, "limit": 50})
        response.raise_for_status()
        out.append(time.perf_counter() - started)
    return out


def via_elasticsearch(es, alias: str, queries: list[str]) -> list[float]:
    """The same request sessions sends (therascript_sessions.search), straight to Elasticsearch."""
    from therascript_common import search
    from therascript_sessions.search import QUERY_FIELDS

    out = []
    for query in queries:
        started = time.perf_counter()
        es.search(index=alias, body=search.search_body(search.text_clauses(query, QUERY_FIELDS, "text"), [], 0, 50,
                                                       "doc_id"))
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="paragraph counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100, help="requests per round and side")
    args = parser.parse_args()
    from elasticsearch import Elasticsearch

    rng = random.Random(7)
    specs = tuple(s for s in therascript_local.PROCESSES if s.name in SPECS)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        Path(tmp).chmod(0o755)  # Elasticsearch runs as its own user when we are root
        token = secrets.token_urlsafe(16)
        ports = {name: free_port() for name in therascript_local.DEFAULT_PORTS}
        system = therascript_local.start_system(ROOT, Path(tmp) / "system", ports=ports, specs=specs,
                                                env_overrides={"THERASCRIPT_API_TOKEN": token}, timeout_s=240)
        try:
            database_url = f"sqlite:///{system.data_dir / 'sessions' / 'sessions.sqlite'}"
            es_url = system.env["SESSIONS_ELASTICSEARCH_URL"]
            alias = "therascript-transcripts"
            es = Elasticsearch(es_url, request_timeout=30)
            gateway = httpx.Client(base_url=system.base_url.removesuffix("/api"),
                                   headers={"Authorization": f"Bearer {token}"}, timeout=60)
            seeded = 0
            for size in sorted(args.sizes):
                sessions = (size - seeded) // PER_SESSION
                started = time.perf_counter()
                seed(database_url, sessions, seeded // PER_SESSION, rng)
                wait_indexed(database_url, es_url, alias, size)
                elapsed = time.perf_counter() - started
                docs = size - seeded
                seeded = size
                result(f"indexing through the outbox, +{docs} paragraphs", docs / elapsed, "docs/s",
                       note=f"{sessions} sessions x {PER_SESSION} paragraphs: commit → outbox empty + searchable, "
                            f"{elapsed:.1f} s")
                queries = [" ".join(rng.sample(VOCABULARY, rng.choice((1, 2)))) for _ in range(args.requests)]
                via_gateway(gateway, queries[:10])  # warm both paths
                via_elasticsearch(es, alias, queries[:10])
                rounds: dict[str, list[tuple[float, float]]] = {"gateway": [], "baseline": []}
                for r in range(args.rounds):
                    order = ("gateway", "baseline") if r % 2 == 0 else ("baseline", "gateway")
                    for side in order:
                        latencies = (via_gateway(gateway, queries) if side == "gateway"
                                     else via_elasticsearch(es, alias, queries))
                        rounds[side].append(percentiles(latencies))
                p50 = {side: statistics.median(p[0] for p in runs) for side, runs in rounds.items()}
                p99 = {side: statistics.median(p[1] for p in runs) for side, runs in rounds.items()}
                note = f"{size} paragraphs, limit=50, searchType=all, {args.rounds} rounds x {args.requests} requests"
                result(f"GET /api/search p50 at {size} paragraphs", p50["gateway"], "ms", baseline=p50["baseline"],
                       baseline_name="same query straight to Elasticsearch", goal="<= 20 ms", note=note)
                result(f"GET /api/search p99 at {size} paragraphs", p99["gateway"], "ms", baseline=p99["baseline"],
                       baseline_name="same query straight to Elasticsearch", note=note)
                print(f"{size:>7} paragraphs: gateway p50 {p50['gateway']:.1f} ms p99 {p99['gateway']:.1f} ms | "
                      f"Elasticsearch direct p50 {p50['baseline']:.1f} ms p99 {p99['baseline']:.1f} ms", flush=True)
            gateway.close()
        finally:
            system.stop()


if __name__ == "__main__":
    main()
