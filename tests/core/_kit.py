"""Shared test kit for the core tests: input generation, the cleanlab oracle, and
the tie-aware checker for the selection filters.

Nothing here imports ``cl_pipeline``: the kit describes what the reference does,
the tests hold ``cl_pipeline.core`` against it.

Inputs are generated from a small, printable :class:`CaseSpec` (seed + knobs)
so that a failing hypothesis example is reproduced with
``build_case(CaseSpec(...))`` alone.
"""

import contextlib
import json
import os
import threading
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
from hypothesis import currently_in_test_context
from hypothesis import event as _event
from hypothesis import note as _note
from hypothesis import strategies as st


def event(value: str) -> None:
    """hypothesis.event, also callable from plain (non-hypothesis) tests."""
    if currently_in_test_context():
        _event(value)


def note(value: str) -> None:
    if currently_in_test_context():
        _note(value)


SCALE = float(os.environ.get("CL_HYPOTHESIS_SCALE", "1"))


def examples(base: int) -> int:
    """Per-test hypothesis example budget, scaled by env CL_HYPOTHESIS_SCALE."""
    return max(1, int(round(base * SCALE)))


# --------------------------------------------------------------------------------------
# Input generation
# --------------------------------------------------------------------------------------

DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass(frozen=True)
class CaseSpec:
    """Everything needed to rebuild one (labels, pred_probs) input deterministically."""

    seed: int
    n: int
    K: int
    dtype: str = "float64"
    conc: float = 0.2  # Dirichlet concentration of every class
    strength: float = 5.0  # extra concentration on the row's "true" class
    noise: float = 0.1  # probability that a row's true class differs from its label
    imbalance: float = 1.0  # Dirichlet alpha of the class frequencies (small = imbalanced)
    quantize: int = 0  # 0 = continuous; q = every probability is a multiple of 1/q
    onehot_frac: float = 0.0  # fraction of rows replaced by a one-hot row
    tie_frac: float = 0.0  # fraction of rows with two exactly equal entries
    dup_frac: float = 0.0  # fraction of rows that duplicate another row of the same class
    uniform_frac: float = 0.0  # fraction of rows set to exactly 1/K (usually no confident class)
    n_absent: int = 0  # classes that never appear in labels
    n_singletons: int = 0  # classes with exactly one example
    jitter_frac: float = 0.0  # fraction of rows scaled by (1 - u * 5e-6): sums slightly below 1
    boundary_frac: float = 0.0  # rows with an entry exactly at (or 1 ulp off) a decision boundary
    layout: str = "C"  # memory layout of pred_probs: "C" or "F" (Fortran)
    labels_dtype: str = "int64"

    def __repr__(self) -> str:  # short, copy-pasteable
        d = asdict(self)
        default = CaseSpec(seed=0, n=0, K=0)
        parts = [f"{k}={v!r}" for k, v in d.items() if k in ("seed", "n", "K") or v != getattr(default, k)]
        return f"CaseSpec({', '.join(parts)})"


@dataclass
class Case:
    spec: CaseSpec
    labels: np.ndarray = field(repr=False)
    pred_probs: np.ndarray = field(repr=False)

    def __repr__(self) -> str:
        return f"build_case({self.spec!r})"

    @property
    def K(self) -> int:
        return self.pred_probs.shape[1]

    @property
    def n(self) -> int:
        return self.pred_probs.shape[0]

    def copy_inputs(self):
        return self.labels.copy(), self.pred_probs.copy()


def _quantize_rows(p: np.ndarray, q: int) -> np.ndarray:
    """Largest-remainder rounding of each row to multiples of 1/q (q a power of two, so
    every value and every row sum is exact in binary floating point)."""
    scaled = p * q
    base = np.floor(scaled)
    short = (q - base.sum(axis=1)).astype(np.int64)
    frac = scaled - base
    order = np.argsort(-frac, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(p.shape[0])[:, None]
    ranks[rows, order] = np.arange(p.shape[1])[None, :]
    base += ranks < short[:, None]
    return base / q


def build_case(spec: CaseSpec) -> Case:
    rng = np.random.default_rng(spec.seed)
    n, K = spec.n, spec.K
    if not (K >= 2 and n >= K):
        raise ValueError(f"need K >= 2 and n >= K, got {spec}")

    # --- which classes appear, and how often
    n_absent = min(spec.n_absent, K - 2)
    absent = rng.choice(K, size=n_absent, replace=False) if n_absent else np.array([], int)
    present = np.setdiff1d(np.arange(K), absent)
    n_single = min(spec.n_singletons, len(present) - 1)  # keep one class to absorb the rest
    singles = rng.choice(present, size=n_single, replace=False) if n_single else np.array([], int)
    multi = np.setdiff1d(present, singles)
    rest = n - len(present)
    w = rng.dirichlet(np.full(len(multi), spec.imbalance))
    w = 0.9 * w + 0.1 / len(multi)
    labels = np.concatenate([present, rng.choice(multi, size=rest, p=w / w.sum())])
    labels = rng.permutation(labels).astype(np.int64)

    # --- latent "true" classes and Dirichlet rows around them
    flip = rng.random(n) < spec.noise
    true = np.where(flip, rng.integers(0, K, size=n), labels)
    alpha = np.full((n, K), spec.conc)
    alpha[np.arange(n), true] += spec.strength
    g = rng.standard_gamma(alpha)
    s = g.sum(axis=1)
    bad = ~(s > 0)
    g[bad] = 0.0
    g[bad, true[bad]] = 1.0
    p = g / g.sum(axis=1, keepdims=True)
    if spec.quantize:
        p = _quantize_rows(p, spec.quantize)

    def pick(frac):
        m = int(round(frac * n))
        return rng.choice(n, size=m, replace=False) if m else np.array([], int)

    # --- special rows
    idx = pick(spec.onehot_frac)
    if len(idx):
        hot = np.where(rng.random(len(idx)) < 0.7, labels[idx], rng.integers(0, K, size=len(idx)))
        p[idx] = 0.0
        p[idx, hot] = 1.0
    idx = pick(spec.tie_frac)
    for i in idx:
        if rng.random() < 0.5:  # the given label ties with the best other class
            others = np.delete(np.arange(K), labels[i])
            a, b = labels[i], others[np.argmax(p[i, others])]
        else:  # the two largest entries tie
            a, b = np.argsort(-p[i], kind="stable")[:2]
        v = (p[i, a] + p[i, b]) / 2
        p[i, a] = p[i, b] = v
    idx = pick(spec.uniform_frac)
    if len(idx):
        p[idx] = 1.0
    idx = pick(spec.dup_frac)
    for i in idx:
        same = np.flatnonzero(labels == labels[i])
        if len(same) > 1:
            j = rng.choice(same[same != i])
            p[j] = p[i]
    p = p / p.sum(axis=1, keepdims=True)
    idx = pick(spec.jitter_frac)
    if len(idx):
        p[idx] *= 1.0 - rng.random((len(idx), 1)) * 5e-6
    p = p.astype(DTYPES[spec.dtype])
    if spec.boundary_frac and K >= 3:
        m = min(int(round(spec.boundary_frac * n)), 80)
        _put_on_boundaries(p, labels, rng, m, m)
    dev = np.abs(p.astype(np.float64).sum(axis=1) - 1.0).max()
    limit = 6e-6 if spec.jitter_frac else 1e-6
    if not dev <= limit:  # pragma: no cover - generator bug
        raise AssertionError(f"generator produced rows off by {dev} for {spec}")
    p = np.asfortranarray(p) if spec.layout == "F" else np.ascontiguousarray(p)
    return Case(spec, labels.astype(spec.labels_dtype), p)


def _set_entry(p, i, col, target, keep):
    """Set p[i, col] = target, leaving column ``keep`` alone and spreading the rest of the row's
    mass over the other columns (proportionally); False when that cannot be done."""
    others = np.setdiff1d(np.arange(p.shape[1]), [col, keep])
    rest = 1.0 - float(p[i, keep]) - float(target)
    if not (0 <= target <= 1) or rest < 0 or len(others) == 0:
        return False
    w = p[i, others].astype(np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(others), 1.0 / len(others))
    p[i, others] = (w * rest).astype(p.dtype)
    p[i, col] = target
    return True


def _put_on_boundaries(p, labels, rng, n_conf, n_argmax):
    """Entries exactly at the reference's decision boundaries, or one ulp either side,
    computed with the reference's own arithmetic:
    - confidence: ``p[i, k] >= t_k - 1e-6`` (t in the dtype cleanlab gives it);
    - near-argmax rule: ``p[i, y] + 1e-6`` (in the input dtype) against ``p[i, j]``.
    A row's own label column never moves, so the thresholds do not change."""
    n, K = p.shape
    t_ref = oracle_thresholds(labels, p)  # in the dtype cleanlab computes it
    own = p[np.arange(n), labels].astype(np.float64)
    ok = (1.0 - own)[:, None] >= t_ref.astype(np.float64)[None, :] - 1e-6  # room for t_k - 1e-6
    ok[np.arange(n), labels] = False
    rows = np.flatnonzero(ok.any(axis=1))
    for i in rng.permutation(rows)[:n_conf]:
        k = rng.choice(np.flatnonzero(ok[i]))
        target = p.dtype.type(t_ref[k] - 1e-6)  # the reference's arithmetic, then the input dtype
        target = [np.nextafter(target, -np.inf), target, np.nextafter(target, np.inf)][rng.integers(3)]
        _set_entry(p, i, k, p.dtype.type(target), labels[i])
    rows = np.flatnonzero(own <= 0.49)
    for i in rng.permutation(rows)[:n_argmax]:
        y = labels[i]
        bumped = p[i, y].copy()
        bumped += 1e-6  # exactly as the reference does it, in the array's dtype
        target = [np.nextafter(bumped, -np.inf), bumped, np.nextafter(bumped, np.inf)][rng.integers(3)]
        j = rng.choice(np.delete(np.arange(K), y))
        _set_entry(p, i, j, p.dtype.type(target), y)


@st.composite
def case_specs(draw, max_n: int = 3000, max_K: int = 50, dtypes=("float32", "float64")):
    # sizes from lists (hypothesis' integer draws lean heavily towards tiny values)
    K = draw(st.sampled_from([k for k in (2, 3, 4, 5, 7, 10, 13, 20, 32, 50) if k <= max_K]))
    extra = draw(st.sampled_from([0, 3, 12, 40, 120, 400, 1000, 3000])) + draw(st.integers(0, 25))
    extra = min(extra, max(0, max_n - K))
    return CaseSpec(
        seed=draw(st.integers(0, 2**32 - 1)),
        n=K + extra,
        K=K,
        dtype=draw(st.sampled_from(dtypes)),
        conc=draw(st.sampled_from([0.2, 0.05, 1.0, 5.0])),
        strength=draw(st.sampled_from([5.0, 0.5, 2.0, 20.0])),
        noise=draw(st.sampled_from([0.1, 0.0, 0.3, 0.6])),
        imbalance=draw(st.sampled_from([1.0, 0.3, 10.0])),
        quantize=draw(st.sampled_from([0, 0, 0, 4, 8, 32])),
        onehot_frac=draw(st.sampled_from([0.0, 0.0, 0.05, 0.5, 1.0])),
        tie_frac=draw(st.sampled_from([0.0, 0.05, 0.3])),
        dup_frac=draw(st.sampled_from([0.0, 0.05, 0.3])),
        uniform_frac=draw(st.sampled_from([0.0, 0.0, 0.05])),
        n_absent=draw(st.sampled_from([0, 0, 1, 3])),
        n_singletons=draw(st.sampled_from([0, 0, 1, 2])),
        jitter_frac=draw(st.sampled_from([0.0, 0.0, 0.0, 0.1])),
        boundary_frac=draw(st.sampled_from([0.0, 0.0, 0.05, 0.3])),
        layout=draw(st.sampled_from(["C", "C", "C", "F"])),
        labels_dtype=draw(st.sampled_from(["int64", "int64", "int32"])),
    )


def cases(**kw):
    return case_specs(**kw).map(build_case)


def describe_case(case: Case) -> None:
    """hypothesis events describing which special situations an example hit."""
    labels, p = case.labels, case.pred_probs
    counts = np.bincount(labels, minlength=case.K)
    event(f"dtype={case.spec.dtype}")
    event("n: " + ("< 100" if case.n < 100 else "100..999" if case.n < 1000 else ">= 1000"))
    event("K: " + ("2..5" if case.K <= 5 else "6..19" if case.K < 20 else "20..50"))
    if case.spec.quantize:
        event("quantized probabilities (ties across rows)")
    if (counts == 0).any():
        event("has a class absent from labels")
    if (counts == 1).any():
        event("has a class with exactly one example")
    t = oracle_thresholds(labels, p)
    if not (p >= t - 1e-6).any(axis=1).all():
        event("has a row with no confident class")
    if (p.max(axis=1) == 1).any():
        event("has a one-hot row")
    if (p == (t - 1e-6).astype(p.dtype)).any():
        event("has an entry exactly at a confidence boundary t_k - 1e-6")


# --------------------------------------------------------------------------------------
# Fixed corner cases (hand-written, small)
# --------------------------------------------------------------------------------------


def corner_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    # two classes, two rows, both correct and one-hot
    out["K2_n2_onehot_correct"] = (np.array([0, 1]), np.eye(2))
    # every row one-hot and correct: diagonal joint, no issues
    lab = np.arange(30) % 3
    out["K3_all_onehot_correct"] = (lab, np.eye(3)[lab])
    # one-hot rows, a third of them wrong
    wrong = lab.copy()
    wrong[::3] = (wrong[::3] + 1) % 3
    out["K3_onehot_a_third_wrong"] = (wrong, np.eye(3)[lab])
    # every row uniform: every class is confident for every row, argmax ties -> class 0
    lab = np.arange(12) % 4
    out["K4_all_uniform"] = (lab, np.full((12, 4), 0.25))
    # a row with no confident class, among confident rows
    p = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9], [1 / 3, 1 / 3, 1 / 3]] * 3)
    out["K3_rows_with_no_confident_class"] = (np.array([0, 1, 2, 0] * 3), p)
    # classes absent from the labels (K=6, labels use 0 and 1 only)
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.full(6, 0.3), size=40)
    out["K6_four_classes_absent"] = (np.array([0, 1] * 20), p)
    # a class with exactly one example, which is mislabelled
    lab = np.array([0] * 10 + [1] * 10 + [2])
    p = np.eye(3)[np.array([0] * 10 + [1] * 10 + [0])] * 0.8 + 0.2 / 3
    out["K3_singleton_class_mislabelled"] = (lab, p)
    # exact ties everywhere (two-decimal grid), many duplicated rows
    p = np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5], [0.5, 0.25, 0.25], [0.0, 0.5, 0.5]] * 10)
    out["K3_grid_ties_duplicates"] = (np.arange(40) % 3, p)
    # K = 50 with n = K (every class once)
    rng = np.random.default_rng(11)
    out["K50_n50_each_class_once"] = (np.arange(50), rng.dirichlet(np.full(50, 0.1), size=50))
    # float32 with rows off by up to 5e-6 (like the published arrays)
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(5, 0.5), size=200)
    p *= 1 - rng.random((200, 1)) * 5e-6
    out["K5_float32_rows_slightly_below_one"] = (rng.integers(0, 5, 200), p.astype(np.float32))
    # the given label ties with another class exactly (near-argmax rule territory)
    p = np.array([[0.45, 0.45, 0.1], [0.1, 0.45, 0.45], [0.45, 0.1, 0.45]] * 8)
    out["K3_label_ties_argmax"] = (np.array([0, 1, 2, 1, 2, 0] * 4), p)
    for v in out.values():
        assert v[0].ndim == 1 and v[1].ndim == 2
    return {k: (np.asarray(l, dtype=np.int64), np.asarray(p)) for k, (l, p) in out.items()}


# --------------------------------------------------------------------------------------
# The oracle (cleanlab 2.9.0)
# --------------------------------------------------------------------------------------


class _NumpyWithArgsortTies:
    """numpy as seen by ``cleanlab.internal.util``, whose only ``argsort`` is the calibration's
    rounding step (``round_preserving_sum``): with numpy's default (unstable, CPU-dependent) sort,
    the reference's pick among tied rounding residuals depends on the machine. The oracle runs
    that code with a stable sort instead, which is cl_pipeline's documented rule
    (``_count.round_rows_preserving_totals``); ``reference_tie_order`` switches it."""

    def __init__(self, order: str):
        self.order = order

    def __getattr__(self, name):
        return getattr(np, name)

    def argsort(self, a, axis=-1, kind=None, order=None):
        if kind is not None or order is not None or np.ndim(a) != 1:
            return np.argsort(a, axis=axis, kind=kind, order=order)
        if self.order == "reversed":  # ascending, equal values in decreasing index order
            return len(a) - 1 - np.argsort(np.asarray(a)[::-1], kind="stable")
        return np.argsort(a, kind="stable")


_TIE_ORDER = {"order": "stable"}


def _reference_rounding():
    """Make the oracle's calibration rounding use the current tie order (idempotent)."""
    import cleanlab.internal.util as util

    util.np = np if _TIE_ORDER["order"] == "installed" else _NumpyWithArgsortTies(_TIE_ORDER["order"])


@contextlib.contextmanager
def reference_tie_order(order: str):
    """``"stable"`` (default: cl_pipeline's rule), ``"reversed"`` (the other order among ties, to
    detect that a rounding cut is tied) or ``"installed"`` (cleanlab exactly as installed)."""
    saved = _TIE_ORDER["order"]
    _TIE_ORDER["order"] = order
    try:
        yield
    finally:
        _TIE_ORDER["order"] = saved


def oracle_thresholds(labels, pred_probs):
    from cleanlab.count import get_confident_thresholds

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_confident_thresholds(labels, pred_probs)


def oracle(fn_path: str, *args, **kwargs):
    """Call ``cleanlab.<module>.<fn>`` with warnings silenced (and n_jobs=1 for the filter)."""
    import importlib

    mod, fn = fn_path.rsplit(".", 1)
    f = getattr(importlib.import_module(f"cleanlab.{mod}"), fn)
    _reference_rounding()
    if fn_path == "filter.find_label_issues":
        kwargs.setdefault("n_jobs", 1)
    if fn_path.startswith("dataset.") and fn_path != "dataset.rank_classes_by_label_quality":
        if fn_path != "dataset.find_overlapping_classes":
            kwargs.setdefault("verbose", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return f(*args, **kwargs)


def reduce_mask(labels, pred_probs):
    """Rows protected by the near-argmax rule (computed exactly as the reference does)."""
    p = np.array(pred_probs, copy=True)
    p[np.arange(len(labels)), labels] += 1e-6
    return p.argmax(axis=1) == labels


# --------------------------------------------------------------------------------------
# Tie-aware description of the selection filters
# --------------------------------------------------------------------------------------

SELECTION_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "low_self_confidence", "low_normalized_margin")
ALL_FILTERS = SELECTION_FILTERS[:3] + ("confident_learning", "predicted_neq_given") + SELECTION_FILTERS[3:]


class Selection:
    """'the m rows of ``rows`` with the smallest ``key``' (the reference: argsort(key)[:m],
    an unstable sort, so rows tied with the m-th value are an arbitrary pick).

    ``pick`` is the pick of cl_pipeline's documented tie rule: the smallest
    ``(key, row index)`` pairs, i.e. among rows tied at the cut the lowest indices."""

    def __init__(self, n: int, rows: np.ndarray, key: np.ndarray, m: int):
        self.m = int(m)
        self.size = len(rows)
        self.sure = np.zeros(n, bool)  # rows every valid pick contains
        self.poss = np.zeros(n, bool)  # rows some valid pick may contain
        self.tied = False
        self.pick = np.zeros(n, bool)  # the index tie rule's pick
        if self.m <= 0 or self.size == 0:
            self.m = max(self.m, 0)
            return
        if self.m >= self.size:
            self.m = self.size
            self.sure[rows] = True
            self.poss[rows] = True
            self.pick[rows] = True
            return
        srt = np.sort(key)
        v = srt[self.m - 1]
        self.tied = bool(srt[self.m] == v)
        self.sure[rows[key < v]] = True
        self.poss[rows[key <= v]] = True
        if not self.tied:  # the rows equal to the m-th value are all needed: no choice
            assert self.poss.sum() == self.m
            self.sure = self.poss.copy()
        self.pick = self.sure.copy()
        at_cut = np.sort(rows[key == v])
        self.pick[at_cut[: self.m - int(self.sure.sum())]] = True

    @property
    def slack(self) -> int:  # how many picks come from the tied group
        return self.m - int(self.sure.sum())


@dataclass
class FilterExpectation:
    """What the reference is allowed to output for one find_label_issues call."""

    filter_by: str
    n: int
    labels: np.ndarray
    reduce: np.ndarray | None  # near-argmax protected rows (None for low_*)
    by_class: dict = field(default_factory=dict)  # k -> {"cls": Selection|None, "nr": [Selection]}
    global_sel: Selection | None = None  # low_* filters
    exact_mask: np.ndarray | None = None  # the unique valid output when nothing is tied
    tied: bool = False
    eligible: np.ndarray | None = None  # rows of classes the filter may flag at all
    notes: list = field(default_factory=list)

    # ---- the unique answer when there is no tie at any cut
    def _compute_exact(self):
        if self.tied:
            return None
        return self._mask_of("sure")

    def index_rule_mask(self) -> np.ndarray:
        """The mask under cl_pipeline's tie rule (lowest row index first among tied keys)."""
        if self.exact_mask is not None:
            return self.exact_mask
        return self._mask_of("pick")

    def _mask_of(self, which: str) -> np.ndarray:
        if self.global_sel is not None:
            return getattr(self.global_sel, which).copy()
        mask = np.zeros(self.n, bool)
        for d in self.by_class.values():
            cls = getattr(d["cls"], which) if d["cls"] is not None else None
            nr = np.zeros(self.n, bool)
            for s in d["nr"]:
                nr |= getattr(s, which)
            if self.filter_by == "prune_by_class":
                mask |= cls
            elif self.filter_by == "prune_by_noise_rate":
                mask |= nr
            else:
                mask |= cls & nr
        if self.reduce is not None:
            mask &= ~self.reduce
        return mask

    # ---- every way the output can be invalid, as messages (empty list = valid)
    def problems(self, mask: np.ndarray) -> list[str]:
        mask = np.asarray(mask)
        out = []
        if mask.shape != (self.n,) or mask.dtype != bool:
            return [f"expected a bool mask of shape ({self.n},), got {mask.dtype} {mask.shape}"]
        if self.global_sel is not None:  # low_*: exactly m rows, sure <= mask <= poss
            s = self.global_sel
            if mask.sum() != s.m:
                out.append(f"flags {mask.sum()} rows, the reference flags exactly {s.m}")
            if (s.sure & ~mask).any():
                out.append(f"misses rows strictly below the cut: {np.flatnonzero(s.sure & ~mask)[:10]}")
            if (mask & ~s.poss).any():
                out.append(f"flags rows beyond the cut value: {np.flatnonzero(mask & ~s.poss)[:10]}")
            return out
        R = self.reduce
        if (mask & R).any():
            out.append(f"flags rows protected by the near-argmax rule: {np.flatnonzero(mask & R)[:10]}")
        if (mask & ~self.eligible).any():
            out.append(f"flags rows of classes that cannot be pruned: {np.flatnonzero(mask & ~self.eligible)[:10]}")
        for k, d in self.by_class.items():
            ink = self.labels == k
            O = mask & ink
            cls, nrs = d["cls"], d["nr"]
            if self.filter_by in ("prune_by_class", "both"):
                if (cls.sure & ~R & ~O).any() and self.filter_by == "prune_by_class":
                    out.append(f"class {k}: misses rows strictly below the prune_by_class cut")
                if (O & ~cls.poss).any():
                    out.append(f"class {k}: flags rows beyond the prune_by_class cut value")
                if self.filter_by == "prune_by_class":
                    lo = int(O.sum() + (cls.sure & R).sum())
                    hi = int(O.sum() + (cls.poss & R).sum())
                    if not lo <= cls.m <= hi:
                        out.append(
                            f"class {k}: {O.sum()} flagged cannot come from a pick of {cls.m} (range {lo}..{hi})"
                        )
            if self.filter_by in ("prune_by_noise_rate", "both"):
                sure_u = np.zeros(self.n, bool)
                poss_u = np.zeros(self.n, bool)
                for s in nrs:
                    sure_u |= s.sure
                    poss_u |= s.poss
                if (O & ~poss_u).any():
                    out.append(f"class {k}: flags rows beyond every prune_by_noise_rate cut value")
                if self.filter_by == "prune_by_noise_rate":
                    if (sure_u & ~R & ~O).any():
                        out.append(f"class {k}: misses rows strictly above a prune_by_noise_rate cut")
                    for s in nrs:
                        if ((s.poss & (O | R)).sum()) < s.m:
                            out.append(f"class {k}: a pick of {s.m} cannot fit inside the flagged rows")
                    if (O & ~sure_u).sum() > sum(s.slack for s in nrs):
                        out.append(f"class {k}: more tied rows flagged than the cuts can pick")
                if self.filter_by == "both":
                    if (cls.sure & sure_u & ~R & ~O).any():
                        out.append(f"class {k}: misses rows strictly inside both cuts")
        return out


def expect_filter(
    labels,
    pred_probs,
    *,
    filter_by="prune_by_noise_rate",
    frac_noise=1.0,
    min_examples_per_class=1,
    num_to_remove_per_class=None,
    confident_joint=None,
    use_requested_counts=False,
) -> FilterExpectation:
    """Describe the reference's output set (see the module docstring of test_parity)."""
    from cleanlab.filter import _keep_at_least_n_per_class
    from cleanlab.internal.util import round_preserving_row_totals

    _reference_rounding()
    labels = np.asarray(labels)
    n, K = pred_probs.shape
    counts = np.bincount(labels, minlength=K)
    exp = FilterExpectation(filter_by, n, labels, None)

    if filter_by in ("confident_learning", "predicted_neq_given"):
        ref = oracle(
            "filter.find_label_issues",
            labels,
            pred_probs,
            filter_by=filter_by,
            frac_noise=frac_noise,
            min_examples_per_class=min_examples_per_class,
            confident_joint=confident_joint,
        )
        exp.exact_mask = ref
        exp.reduce = reduce_mask(labels, pred_probs)
        exp.eligible = np.ones(n, bool)
        return exp

    if filter_by.startswith("low_"):
        scores = oracle("rank.get_label_quality_scores", labels, pred_probs, method=filter_by[4:])
        m = int(oracle("count.num_label_issues", labels, pred_probs))
        exp.global_sel = Selection(n, np.arange(n), scores, m)
        exp.tied = exp.global_sel.tied
        exp.exact_mask = exp._compute_exact()
        return exp

    # prune_by_noise_rate / prune_by_class / both
    if confident_joint is None:
        cj = oracle("count.compute_confident_joint", labels, pred_probs)
    else:
        cj = np.asarray(confident_joint)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        pcm = _keep_at_least_n_per_class(cj.T, n=min_examples_per_class, frac_noise=frac_noise)
        if num_to_remove_per_class is not None:
            psy = pcm / np.sum(pcm, axis=1)
            noise_per_s = psy.sum(axis=1) - psy.diagonal()
            tmp = (psy.T * num_to_remove_per_class / noise_per_s).T
            np.fill_diagonal(tmp, counts - np.asarray(num_to_remove_per_class))
            pcm = round_preserving_row_totals(tmp)
    exp.reduce = reduce_mask(labels, pred_probs)
    exp.eligible = np.zeros(n, bool)
    for k in range(K):
        nk = counts[k]
        if nk <= min_examples_per_class or nk <= 1:
            continue
        rows = np.flatnonzero(labels == k)
        exp.eligible[rows] = True
        d = {"cls": None, "nr": []}
        if filter_by in ("prune_by_class", "both"):
            m = nk - pcm[k, k]
            if num_to_remove_per_class is not None and m != num_to_remove_per_class[k]:
                exp.notes.append(f"reference removes {m} from class {k}, {num_to_remove_per_class[k]} requested")
                if use_requested_counts:
                    m = num_to_remove_per_class[k]
            d["cls"] = Selection(n, rows, pred_probs[rows, k], m)
            exp.tied |= d["cls"].tied
        if filter_by in ("prune_by_noise_rate", "both"):
            for j in range(K):
                if j != k and pcm[j, k] > 0:
                    margin = pred_probs[rows, j] - pred_probs[rows, k]
                    s = Selection(n, rows, -margin, pcm[j, k])
                    d["nr"].append(s)
                    exp.tied |= s.tied
        exp.by_class[k] = d
    exp.exact_mask = exp._compute_exact()
    return exp


# --------------------------------------------------------------------------------------
# Tie statistics (written to .pytest_cache and printed at the end of the session)
# --------------------------------------------------------------------------------------

_lock = threading.Lock()
TIE_STATS: dict = defaultdict(lambda: defaultdict(int))


def record(category: str, **flags: bool) -> None:
    with _lock:
        d = TIE_STATS[category]
        d["cases"] += 1
        for k, v in flags.items():
            d[k] += int(bool(v))


def tie_stats_json() -> str:
    return json.dumps({k: dict(v) for k, v in sorted(TIE_STATS.items())}, indent=2, sort_keys=True)
