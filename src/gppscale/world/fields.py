"""Smooth random fields defined everywhere, evaluated on any grid.

A field is a sum of random Fourier features: ``f(x, y) = sqrt(2/K) * sum_k cos(a_k x + b_k y + phi_k)``
with wave vectors drawn from a Gaussian of standard deviation ``1 / length_m``. It approximates a
zero-mean, unit-variance Gaussian random field with a squared-exponential covariance of that length
scale, and it is a *function*: the same point gives the same value whichever grid (UTM 30 m,
EPSG:4326 tiles, sub-pixel samples) asks for it. That keeps every product of the world consistent.

On a regular grid the sum factorises (``cos(u + v) = cos u cos v - sin u sin v``) into two small
matrix products, so a 4096 x 4096 field costs two BLAS calls, not 16 M x K cosines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FourierField", "seeded_rng"]

F64 = npt.NDArray[np.float64]


def seeded_rng(seed: int, *stream: int | str) -> np.random.Generator:
    """An independent random generator for one component of the world.

    Strings in ``stream`` are hashed stably (not with Python's salted ``hash``), so a component gets the
    same numbers in every process.
    """
    keys = [seed]
    for s in stream:
        keys.append(
            s if isinstance(s, int) else int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest())
        )
    return np.random.default_rng(np.random.SeedSequence(keys))


@dataclass(frozen=True)
class FourierField:
    """A smooth, unit-variance random field of a given length scale (metres, in a projected CRS).

    Example:
        >>> f = FourierField.make(seeded_rng(1, "demo"), length_m=500.0)
        >>> xs, ys = np.arange(3) * 30.0, np.arange(2) * -30.0
        >>> bool(np.allclose(f.on_grid(xs, ys), f.at(*np.meshgrid(xs, ys))))
        True
    """

    a: F64
    b: F64
    phi: F64

    @staticmethod
    def make(rng: np.random.Generator, length_m: float, n_terms: int = 96) -> FourierField:
        """Draw a field with ``n_terms`` random features and correlation length ``length_m``."""
        a = rng.normal(0.0, 1.0 / length_m, n_terms)
        b = rng.normal(0.0, 1.0 / length_m, n_terms)
        phi = rng.uniform(0.0, 2.0 * np.pi, n_terms)
        return FourierField(a, b, phi)

    @property
    def _norm(self) -> float:
        return float(np.sqrt(2.0 / self.a.size))

    def on_grid(self, xs: F64, ys: F64) -> F64:
        """Values on the regular grid ``ys x xs`` (rows, columns) as a ``(len(ys), len(xs))`` array."""
        u = np.outer(xs, self.a)
        v = np.outer(ys, self.b) + self.phi
        out: F64 = (np.cos(v) @ np.cos(u).T - np.sin(v) @ np.sin(u).T) * self._norm
        return out

    def at(self, x: F64, y: F64, block: int = 65536) -> F64:
        """Values at scattered points (any shape), computed in blocks to bound memory."""
        xf, yf = np.ravel(x), np.ravel(y)
        out = np.empty(xf.shape, dtype=np.float64)
        for i in range(0, xf.size, block):
            arg = np.outer(xf[i : i + block], self.a) + np.outer(yf[i : i + block], self.b) + self.phi
            out[i : i + block] = np.cos(arg).sum(axis=1) * self._norm
        return out.reshape(np.shape(x))
