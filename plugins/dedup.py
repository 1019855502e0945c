"""Exact and MinHash-LSH fuzzy deduplication, as corpus-level steps.

A duplicate can sit in any shard, so a dedup step cannot decide one batch at a
time. Each one is written in YAML as one step and runs as three parts
(DESIGN.md, "Corpus-level steps"); ``expand`` tells the host so:

* a **map** part (``<name>_hash`` / ``<name>_signature``) adds per-document
  columns in the normal passes, on every worker: a content hash, or the
  MinHash band hashes;
* a **fit** part (``<name>_groups``) works out the groups through DuckDB over
  those columns (``GROUP BY`` for exact; LSH buckets one band per query,
  optional true-Jaccard check and connected components by min-label
  propagation for fuzzy) and
  writes ``<name>_groups.parquet`` into its artifact folder (a SQL view of the
  run with that name);
* a **filter** part (``<name>``) rejects every member of a group but the one
  chosen by ``keep_by`` with ``duplicate_of:<kept id>`` /
  ``near_duplicate_of:<kept id>``, and adds the group size to every row.

No part holds all pairs of the corpus in one process: the map parts see one
batch, the fit part's joins and iterations are DuckDB's (each iteration
written to Parquet), and the filter loads only the rows of that table
(documents that have a duplicate), 8 bytes of id hash each plus their ids.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from curator import FilterResult, FilterStep, FitContext, FitStep, MapStep, Params, hookimpl
from curator.config import StepSpec
from curator.errors import ConfigError

WORD = re.compile(r"\w+", re.UNICODE)
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _xxhash():
    import xxhash

    return xxhash


def id_hashes(ids: list[str]) -> np.ndarray:
    h = _xxhash().xxh3_64_intdigest
    return np.fromiter((h(i.encode("utf-8", "surrogatepass")) for i in ids), dtype=np.uint64, count=len(ids))


def _sql_order(keep_by: str) -> str:
    # the id breaks ties, so the kept document never depends on scan order
    return f"{keep_by}, id" if keep_by.strip().lower() != "id" else "id"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _tmp(out: Path) -> Path:
    return out.with_name(out.name + ".tmp")


def _copy_to(ctx: FitContext, query: str, out: Path) -> None:
    """COPY a query to Parquet under a temporary name, then rename: the catalog turns every
    artifact ``*.parquet`` into a view, so a run killed mid-COPY must not leave a truncated one."""
    tmp = _tmp(out)
    ctx.execute(f"COPY ({query}) TO {_path(tmp)} (FORMAT parquet)")
    os.replace(tmp, out)


class GroupTable:
    """The fit part's groups, looked up by document id in the filter (sorted id hashes, ids verified)."""

    def __init__(self, path: str) -> None:
        table = pq.read_table(path, columns=["id", "kept_id", "cluster", "size"])
        ids = table.column("id").to_pylist()
        hashes = id_hashes(ids)
        order = np.argsort(hashes, kind="stable")
        self.hashes = hashes[order]
        self.ids = np.array(ids, dtype=object)[order]
        self.kept = np.array(table.column("kept_id").to_pylist(), dtype=object)[order]
        self.cluster = np.array(table.column("cluster").to_pylist(), dtype=object)[order]
        self.size = table.column("size").to_numpy().astype(np.int64)[order]

    def lookup(self, ids: list[str]) -> np.ndarray:
        """Row of each id in the table, -1 when the document has no duplicate."""
        if not len(self.hashes):
            return np.full(len(ids), -1, dtype=np.int64)
        h = id_hashes(ids)
        pos = np.searchsorted(self.hashes, h)
        rows = np.full(len(ids), -1, dtype=np.int64)
        for i, (p, doc_id) in enumerate(zip(pos, ids)):
            # several ids may share a 64-bit hash: compare the ids themselves
            while p < len(self.hashes) and self.hashes[p] == h[i]:
                if self.ids[p] == doc_id:
                    rows[i] = p
                    break
                p += 1
        return rows


class _GroupFilter(FilterStep):
    """Filter part shared by both dedups: reject every group member but the kept one."""

    reason_prefix: ClassVar[str] = "duplicate_of"
    fit_type: ClassVar[str] = ""
    map_type: ClassVar[str] = ""
    map_suffix: ClassVar[str] = ""

    @classmethod
    def expand(cls, spec: StepSpec) -> list[StepSpec] | None:
        if "groups" in spec.params:  # already expanded, or a table given by hand
            return None
        name = spec.name
        map_params, fit_params = cls.part_params(name, spec.params)
        own = {**spec.params, "groups": f"${{{name}_groups.table}}"}
        lines = spec.param_lines
        return [
            StepSpec(type=cls.map_type, name=f"{name}_{cls.map_suffix}", params=map_params, line=spec.line, param_lines=lines),
            StepSpec(type=cls.fit_type, name=f"{name}_groups", params=fit_params, line=spec.line, param_lines=lines),
            StepSpec(type=spec.type, name=name, params=own, line=spec.line, param_lines=lines),
        ]

    @classmethod
    def part_params(cls, name: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def setup(self) -> None:
        if not self.params.groups:
            raise ConfigError(f"step {self.name!r}: no groups table (the host sets `groups` when it expands the step)")
        if not Path(self.params.groups).is_file():
            raise ConfigError(f"step {self.name!r}: groups table {self.params.groups!r} not found")
        self._groups = GroupTable(self.params.groups)

    def decide(self, batch: pa.Table) -> tuple[np.ndarray, list[str | None], np.ndarray, np.ndarray]:
        ids = batch.column("id").to_pylist()
        rows = self._groups.lookup(ids)
        keep = np.ones(len(ids), dtype=bool)
        reasons: list[str | None] = [None] * len(ids)
        size = np.ones(len(ids), dtype=np.int64)
        cluster = np.full(len(ids), None, dtype=object)
        for i, r in enumerate(rows):
            if r < 0:
                continue
            size[i] = self._groups.size[r]
            cluster[i] = self._groups.cluster[r]
            kept = self._groups.kept[r]
            if kept != ids[i]:
                keep[i] = False
                reasons[i] = f"{self.reason_prefix}:{kept}"
        return keep, reasons, size, cluster


# ---------------------------------------------------------------- exact


def normalise_for_hash(text: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    """Lowercase, every run of whitespace to one space, trimmed."""
    text = pc.utf8_lower(text)
    text = pc.replace_substring_regex(text, r"\s+", " ")
    return pc.utf8_trim_whitespace(text)


class ExactDedupHash(MapStep):
    """Map part of exact_dedup: a 128-bit content hash per document."""

    name = "exact_dedup_hash"
    description = "exact_dedup's map part: <step>__hash, xxh3-128 of the text (raw or normalised) or of a column"
    requires = {"xxhash": "xxhash"}

    class Params(Params):
        mode: Literal["raw", "normalised", "column"] = Field("normalised", description="hash the raw text, lowercase+whitespace-collapsed text, or `column`")
        column: str | None = Field(None, description="with mode: column, the column to hash (e.g. url)")

        @model_validator(mode="after")
        def _column(self) -> ExactDedupHash.Params:
            if (self.mode == "column") != (self.column is not None):
                raise ValueError("give `column` exactly when mode is column")
            return self

    def process(self, batch: pa.Table) -> dict[str, Any]:
        p = self.params
        if p.mode == "column":
            if p.column not in batch.column_names:
                raise ConfigError(f"step {self.name!r}: column {p.column!r} not in the data (columns: {', '.join(batch.column_names)})")
            values = pc.cast(batch.column(p.column), pa.string()).to_pylist()
        elif p.mode == "normalised":
            values = normalise_for_hash(batch.column("text")).to_pylist()
        else:
            values = batch.column("text").to_pylist()
        h = _xxhash().xxh3_128_hexdigest
        # a null (e.g. a missing URL) is nobody's duplicate
        return {"hash": pa.array([None if v is None else h(v.encode("utf-8", "surrogatepass")) for v in values], pa.string())}


class ExactDedupGroups(FitStep):
    """Fit part of exact_dedup: documents sharing a hash, the one kept by keep_by."""

    name = "exact_dedup_groups"
    description = "exact_dedup's fit part: GROUP BY hash in DuckDB, writes <step>.parquet (id, kept_id, cluster, size)"

    class Params(Params):
        hash_column: str = Field(description="the hash column the map part added")
        keep_by: str = Field("id", description="SQL ORDER BY expression; the first document of a group is kept")

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        h = _quote(self.params.hash_column)
        out = ctx.artifact_dir / f"{self.name}.parquet"  # becomes the SQL view <fit step name>
        query = f"""
            WITH dup AS (SELECT {h} AS h FROM corpus WHERE {h} IS NOT NULL GROUP BY {h} HAVING count(*) > 1),
            ranked AS (
                SELECT c.id, c.{h} AS cluster,
                       row_number() OVER (PARTITION BY c.{h} ORDER BY {_sql_order(self.params.keep_by)}) AS rn,
                       count(*) OVER (PARTITION BY c.{h}) AS size
                FROM corpus c SEMI JOIN dup ON c.{h} = dup.h
            )
            SELECT r.id, k.id AS kept_id, r.cluster, r.size
            FROM ranked r JOIN ranked k ON k.cluster = r.cluster AND k.rn = 1
            ORDER BY r.cluster, r.rn
        """
        try:
            _copy_to(ctx, query, out)
        except Exception as exc:
            raise ConfigError(f"step {self.name!r}: grouping failed (check keep_by {self.params.keep_by!r}): {exc}") from None
        (documents,) = ctx.execute("SELECT count(*) FROM corpus").fetchall()[0]
        groups, members = ctx.execute(f"SELECT count(DISTINCT cluster), count(*) FROM read_parquet({_path(out)})").fetchall()[0]
        return {"table": str(out), "documents": documents, "groups": groups, "duplicates": members - groups}


class ExactDedup(_GroupFilter):
    """Exact deduplication: one document kept per content hash."""

    name = "exact_dedup"
    description = "exact dedup across the corpus: keeps one document per hash (keep_by), rejects duplicate_of:<kept id>, adds <step>__dup_count"
    requires = {"xxhash": "xxhash"}
    reason_prefix = "duplicate_of"
    map_type = "exact_dedup_hash"
    fit_type = "exact_dedup_groups"
    map_suffix = "hash"

    class Params(ExactDedupHash.Params):
        keep_by: str = Field("id", description="SQL ORDER BY expression over the corpus choosing the kept document, e.g. `length(text) DESC`")
        groups: str | None = Field(None, description="groups table (set by the host when it expands the step)")

    @classmethod
    def part_params(cls, name: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        map_params = {k: params[k] for k in ("mode", "column") if k in params}
        fit_params = {"hash_column": f"{name}_hash__hash", "keep_by": params.get("keep_by", "id")}
        return map_params, fit_params

    def filter(self, batch: pa.Table) -> FilterResult:
        keep, reasons, size, _ = self.decide(batch)
        return FilterResult(keep, reasons, {"dup_count": size})


# ---------------------------------------------------------------- MinHash


def shingles(text: str, ngram: int) -> list[str]:
    """Word n-grams of the lowercased text (a text shorter than n words is one shingle)."""
    words = WORD.findall(text.lower())
    if len(words) <= ngram:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(N, bands*rows) uint32 MinHash values -> (N, bands) uint64 bucket keys.

    Each band's ``rows`` values are folded into 64 bits with a multiply-xor
    mix and a splitmix64 finaliser; two documents share a bucket key when
    their band is identical (a different band colliding is ~2^-64).
    """
    sig = signatures.reshape(len(signatures), bands, rows).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = np.full(sig.shape[:2], np.uint64(0x9E3779B97F4A7C15))
        for j in range(rows):
            h = (h ^ sig[:, :, j]) * np.uint64(0x100000001B3)
            h ^= h >> np.uint64(29)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h & _MASK64


def lsh_threshold(bands: int, rows: int) -> float:
    """The Jaccard similarity at which the S-curve 1-(1-s^r)^b is steepest, ~(1/b)^(1/r)."""
    return (1 / bands) ** (1 / rows)


class MinHashSignature(MapStep):
    """Map part of minhash_dedup: LSH band keys of the MinHash signature of word n-grams."""

    name = "minhash_signature"
    description = "minhash_dedup's map part: <step>__bands, one 64-bit bucket key per LSH band (rensa MinHash over word n-grams)"
    requires = {"rensa": "rensa"}
    SLICE: ClassVar[int] = 250

    class Params(Params):
        ngram: int = Field(5, ge=1, description="words per shingle")
        bands: int = Field(14, ge=1, description="LSH bands")
        rows: int = Field(12, ge=1, description="MinHash values per band (bands*rows permutations)")
        seed: int = Field(1, ge=0, description="MinHash seed")

    def process(self, batch: pa.Table) -> dict[str, Any]:
        import rensa

        p = self.params
        texts = batch.column("text").to_pylist()
        if not texts:
            return {"bands": pa.array([], pa.list_(pa.uint64()))}
        keys: list[np.ndarray] = []
        nonempty: list[bool] = []
        # A few hundred documents at a time: the shingle strings of a whole batch
        # (~80 bytes each, ~500 per web page) would be most of the worker's memory.
        for start in range(0, len(texts), self.SLICE):
            sets = [shingles(t, p.ngram) for t in texts[start : start + self.SLICE]]
            matrix = np.array(rensa.RMinHash.digest_matrix_from_token_sets(sets, p.bands * p.rows, p.seed).to_rows(), dtype=np.uint32)
            keys.append(band_hashes(matrix, p.bands, p.rows))
            nonempty.extend(bool(s) for s in sets)
        flat = pa.array(np.concatenate(keys).reshape(-1), pa.uint64())
        offsets = pa.array(np.arange(0, (len(texts) + 1) * p.bands, p.bands, dtype=np.int32))
        has_words = pa.array(nonempty)
        # a document without words has no signature and no near-duplicates
        return {"bands": pa.ListArray.from_arrays(offsets, flat, mask=pc.invert(has_words))}


def jaccard(a: str, b: str, ngram: int) -> float:
    sa, sb = set(shingles(a, ngram)), set(shingles(b, ngram))
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)


class MinHashClusters(FitStep):
    """Fit part of minhash_dedup: LSH buckets -> candidate edges -> connected components, in DuckDB."""

    name = "minhash_clusters"
    description = "minhash_dedup's fit part: LSH buckets and connected components in DuckDB, writes <step>.parquet"

    class Params(Params):
        bands_column: str = Field(description="the band-key list column the map part added")
        keep_by: str = Field("id", description="SQL ORDER BY expression; the first document of a cluster is kept")
        verify: bool = Field(False, description="check each candidate pair's true word n-gram Jaccard")
        threshold: float = Field(0.8, ge=0, le=1, description="with verify: minimum Jaccard of a kept edge")
        ngram: int = Field(5, ge=1, description="with verify: words per shingle (as the map part)")
        max_iterations: int = Field(100, ge=1, description="label-propagation rounds before giving up")

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        p = self.params
        art = ctx.artifact_dir
        bands = _quote(p.bands_column)
        edges = art / f"{self.name}_edges.parquet"  # view <fit step name>_edges: the candidate pairs
        work = art / "work"  # intermediates, below the folder level the catalog turns into views
        work.mkdir(exist_ok=True)
        for stale in work.glob("edges-*.parquet"):  # from a run killed in this fit
            stale.unlink()
        n_bands = ctx.execute(f"SELECT max(len({bands})) FROM corpus").fetchall()[0][0] or 0
        # Every member of an LSH bucket is linked to the bucket's smallest id:
        # a star per bucket, so the edges grow with documents, not pairs. One
        # band per query: DuckDB's hash table then holds one key per document,
        # not one per document and band (14x less memory at the same speed).
        for band in range(1, n_bands + 1):
            _copy_to(
                ctx,
                f"""
                WITH buckets AS (
                    SELECT {bands}[{band}] AS h, min(id) AS root FROM corpus WHERE {bands} IS NOT NULL GROUP BY 1 HAVING count(*) > 1
                )
                SELECT c.id AS a, k.root AS b FROM corpus c JOIN buckets k ON c.{bands}[{band}] = k.h WHERE c.id <> k.root
            """,
                work / f"edges-{band:03d}.parquet",
            )
        band_edges = f"read_parquet({_path(work / 'edges-*.parquet')})" if n_bands else "(SELECT NULL::VARCHAR AS a, NULL::VARCHAR AS b LIMIT 0)"
        _copy_to(ctx, f"SELECT DISTINCT a, b FROM {band_edges}", edges)
        for part in work.glob("edges-*.parquet"):
            part.unlink()
        (candidates,) = ctx.execute(f"SELECT count(*) FROM read_parquet({_path(edges)})").fetchall()[0]
        if p.verify:
            edges = self._verify(ctx, edges)
        (verified,) = ctx.execute(f"SELECT count(*) FROM read_parquet({_path(edges)})").fetchall()[0]
        labels, iterations = self._components(ctx, edges)
        out = art / f"{self.name}.parquet"  # becomes the SQL view <fit step name>
        try:
            _copy_to(
                ctx,
                f"""
                WITH ranked AS (
                    SELECT c.id, l.label AS cluster,
                           row_number() OVER (PARTITION BY l.label ORDER BY {_sql_order(p.keep_by)}) AS rn,
                           count(*) OVER (PARTITION BY l.label) AS size
                    FROM corpus c JOIN read_parquet({_path(labels)}) l ON l.node = c.id
                )
                SELECT r.id, k.id AS kept_id, r.cluster, r.size
                FROM ranked r JOIN ranked k ON k.cluster = r.cluster AND k.rn = 1
                ORDER BY r.cluster, r.rn
            """,
                out,
            )
        except Exception as exc:
            raise ConfigError(f"step {self.name!r}: choosing kept documents failed (check keep_by {p.keep_by!r}): {exc}") from None
        shutil.rmtree(labels.parent)
        (documents,) = ctx.execute("SELECT count(*) FROM corpus").fetchall()[0]
        clusters, members = ctx.execute(f"SELECT count(DISTINCT cluster), count(*) FROM read_parquet({_path(out)})").fetchall()[0]
        return {
            "table": str(out),
            "documents": documents,
            "candidate_edges": candidates,
            "edges": verified,
            "clusters": clusters,
            "duplicates": members - clusters,
            "iterations": iterations,
        }

    def _verify(self, ctx: FitContext, edges: Path) -> Path:
        """Keep the candidate edges whose true Jaccard reaches the threshold (streamed, batch by batch)."""
        out = ctx.artifact_dir / f"{self.name}_verified.parquet"
        schema = pa.schema([("a", pa.string()), ("b", pa.string()), ("jaccard", pa.float64())])
        reader = ctx.sql(f"""
            SELECT e.a, e.b, ta.text AS ta, tb.text AS tb
            FROM read_parquet({_path(edges)}) e JOIN corpus ta ON ta.id = e.a JOIN corpus tb ON tb.id = e.b
        """).to_arrow_reader(10_000)
        with pq.ParquetWriter(_tmp(out), schema) as writer:
            for rb in reader:
                sims = np.array([jaccard(x, y, self.params.ngram) for x, y in zip(rb.column("ta").to_pylist(), rb.column("tb").to_pylist())])
                keep = sims >= self.params.threshold
                writer.write_table(pa.table({"a": rb.column("a"), "b": rb.column("b"), "jaccard": sims}, schema=schema).filter(keep))
        os.replace(_tmp(out), out)
        return out

    def _components(self, ctx: FitContext, edges: Path) -> tuple[Path, int]:
        """Connected components by min-label propagation; each round is one DuckDB query written to Parquet.

        Every node starts with the smallest id among itself and its
        neighbours; each round takes the smallest label among its neighbours'
        labels, until no label changes. Label = the component's smallest id.
        """
        art = ctx.artifact_dir
        adjacency = f"(SELECT a AS node, b AS nbr FROM read_parquet({_path(edges)}) UNION ALL SELECT b, a FROM read_parquet({_path(edges)}))"
        work = art / "work"
        work.mkdir(exist_ok=True)
        current = work / "labels-0.parquet"
        ctx.execute(f"COPY (SELECT node, least(node, min(nbr)) AS label FROM {adjacency} GROUP BY node) TO {_path(current)} (FORMAT parquet)")
        for i in range(1, self.params.max_iterations + 1):
            nxt = work / f"labels-{i}.parquet"
            ctx.execute(f"""
                COPY (
                    SELECT l.node, least(l.label, min(n.label)) AS label
                    FROM read_parquet({_path(current)}) l
                    JOIN {adjacency} x ON x.node = l.node
                    JOIN read_parquet({_path(current)}) n ON n.node = x.nbr
                    GROUP BY l.node, l.label
                ) TO {_path(nxt)} (FORMAT parquet)
            """)
            (changed,) = ctx.execute(f"""
                SELECT count(*) FROM read_parquet({_path(nxt)}) n JOIN read_parquet({_path(current)}) c USING (node) WHERE n.label <> c.label
            """).fetchall()[0]
            current.unlink()
            current = nxt
            if not changed:
                return current, i
        raise ConfigError(f"step {self.name!r}: components did not settle in {self.params.max_iterations} rounds; raise max_iterations")


class MinHashDedup(_GroupFilter):
    """Fuzzy deduplication: MinHash-LSH near-duplicate clusters, one document kept per cluster."""

    name = "minhash_dedup"
    description = "fuzzy dedup: MinHash-LSH over word n-grams, clusters by connected components, rejects near_duplicate_of:<kept id>; <step>__cluster, <step>__cluster_size"
    requires = {"rensa": "rensa", "xxhash": "xxhash"}
    reason_prefix = "near_duplicate_of"
    map_type = "minhash_signature"
    fit_type = "minhash_clusters"
    map_suffix = "signature"

    class Params(MinHashSignature.Params):
        keep_by: str = Field("id", description="SQL ORDER BY expression over the corpus choosing the kept document, e.g. `length(text) DESC`")
        verify: bool = Field(False, description="check candidate pairs' true word n-gram Jaccard before clustering")
        threshold: float = Field(0.8, ge=0, le=1, description="with verify: minimum true Jaccard of a duplicate pair")
        groups: str | None = Field(None, description="groups table (set by the host when it expands the step)")

    @classmethod
    def part_params(cls, name: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        map_params = {k: params[k] for k in ("ngram", "bands", "rows", "seed") if k in params}
        fit_params = {"bands_column": f"{name}_signature__bands", **{k: params[k] for k in ("keep_by", "verify", "threshold", "ngram") if k in params}}
        return map_params, fit_params

    def filter(self, batch: pa.Table) -> FilterResult:
        keep, reasons, size, cluster = self.decide(batch)
        return FilterResult(keep, reasons, {"cluster": pa.array(cluster.tolist(), pa.string()), "cluster_size": size})


@hookimpl
def register_steps(register):
    for cls in (ExactDedupHash, ExactDedupGroups, ExactDedup, MinHashSignature, MinHashClusters, MinHashDedup):
        register(cls)
