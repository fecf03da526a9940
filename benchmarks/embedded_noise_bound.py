"""Measure the feasible ``source.noise_rate`` of the embedded digits (``config.MAX_EMBEDDED_NOISE_RATE``).

``datasets.load_embedded`` draws its noise matrix with ``core.generate_noise_matrix_from_trace``
(trace ``K * (1 - noise_rate)``, the digits' class prior, ``valid_noise_matrix=True``), which
redraws until the matrix is learnable and gives up after 10,000 draws. For each noise rate this
estimates the probability ``p`` that one draw is learnable (the fraction of ``--draws`` draws of
the same sampler that are) and so the probability ``(1 - p) ** 10_000`` that a seed finds none.

Usage::

    python -m benchmarks.embedded_noise_bound [--draws 20000] [--rates 0.7 0.8 0.85]
"""

import argparse

import numpy as np

from cl_pipeline.core._noise_generation import _MAX_TRIES, _is_valid, draw_noise_matrix


def digits_prior() -> np.ndarray:
    """The class prior of scikit-learn's digits (the embedded dataset's true labels)."""
    from sklearn.datasets import load_digits

    counts = np.bincount(load_digits().target)
    return counts / counts.sum()


def valid_fraction(rate: float, draws: int, seed: int = 12345) -> float:
    """Fraction of ``draws`` noise matrices of trace ``K * (1 - rate)`` that are learnable."""
    py = digits_prior()
    k = py.size
    rng = np.random.default_rng(seed)
    return sum(_is_valid(draw_noise_matrix(rng, k, k * (1.0 - rate), 0.0), py) for _ in range(draws)) / draws


def main(argv: list[str] | None = None) -> None:
    """Print, per noise rate, the learnable fraction of draws and the chance that a seed fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.7, 0.75, 0.8, 0.82, 0.84, 0.85, 0.86, 0.88])
    args = parser.parse_args(argv)
    print(f"| noise_rate | learnable draws (of {args.draws}) | P(a seed finds none in {_MAX_TRIES} draws) |")
    print("|---|---|---|")
    for rate in args.rates:
        p = valid_fraction(rate, args.draws)
        fail = (1.0 - p) ** _MAX_TRIES if p > 0 else 1.0
        print(f"| {rate} | {p:.5f} | {fail:.2g} |", flush=True)


if __name__ == "__main__":
    main()
