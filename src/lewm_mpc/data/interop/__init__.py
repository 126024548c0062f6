"""Converting datasets to and from stable-worldmodel / LeWM HDF5 files and plain numpy arrays.

**The stable-worldmodel (swm) layout.** One dataset per column, rows concatenated over all steps
of all episodes, plus two per-episode columns:

- ``pixels``      uint8 (N, H, W, 3)   (HWC; channels-first is refused)
- ``action``      (N, A)               row ``t``: the action taken after observation ``t``; each
  episode's last row has no action (NaN)
- ``state``       (N, Ds)              (``proprio`` when there is no ``state``; lewm_mpc needs
  both pixels and a state: pixel-only or state-only files are refused)
- ``episode_idx`` int (N,)             (``ep_idx`` in older files)
- ``step_idx``    int (N,)             (ignored on import: recomputed)
- ``ep_len``      int32 (E,)           rows per episode
- ``ep_offset``   int64 (E,)           first row of each episode

A column may also be a group (newer files write ``proprio/...``): every dataset whose path starts
with ``<column>/`` is read, in sorted path order, flattened per row and concatenated along the
feature axis (``pixels`` must then hold exactly one dataset). Other columns (``reward``,
``terminated``, ...) are ignored. Without ``ep_len`` the episodes are the contiguous runs of
``episode_idx`` / ``ep_idx``; ``ep_offset`` defaults to the running sum of ``ep_len``. Episode
ids are kept when they increase along the file, else renumbered ``0 .. E-1``.

**Frameskip on import** (stable-worldmodel's rule). With ``frameskip=k`` the observations of an
episode are kept every ``k`` rows (rows ``0, k, 2k, ...``) and the ``k`` actions between two kept
observations are concatenated into one row, ``(steps, k * A)``; a trailing partial block (fewer
than ``k`` actions after the last kept observation) is dropped. An episode of ``L`` rows becomes
``(L - 1) // k + 1`` rows; episodes with no row are skipped. The imported dataset records
``action_block = k`` (``k`` env actions per row) and ``control_hz / k`` rows per second. The
source's action on an episode's last row (NaN in swm files) is never read, hence never stored;
every other action used must be finite.

**Export.** One swm row per row of ours: a dataset collected in blocks of ``K`` env actions
(``action_block = K``) is written with ``(N, K * A)`` actions and the file attribute
``frameskip = K`` (its rows are ``K`` env steps apart). The exact :class:`DatasetMeta` is stored as
JSON in the file attribute ``lewm_mpc_meta``, which :func:`import_swm` restores: ours -> swm ->
ours is lossless (every column and the meta).

Both directions stream: columns are read and written ``chunk_rows`` rows at a time (at most
``max(chunk_rows, frameskip)`` rows of one column are read at once), and the output goes through a
temporary file in the target folder renamed at the end, so a crash never leaves a half file at
``out``. :func:`import_npz` reads its arrays into memory (an ``.npz`` has no partial reads) but
writes the same way.

**LeRobot.** :func:`import_lerobot` reads a local LeRobot dataset folder (format v3.0, or v2.1 /
v2.0) directly, without the ``lerobot`` package: one camera's frames (mp4 decoded with PyAV, or
the PNG/JPEG images of the parquet), a state feature and the action, streaming the same way
(extra ``lerobot``: pyarrow and av). See :mod:`lewm_mpc.data.interop.importing_lerobot`.
"""

from lewm_mpc.data.interop._columns import CHUNK_ROWS, META_ATTR
from lewm_mpc.data.interop.exporting import export_swm
from lewm_mpc.data.interop.importing import import_npz, import_swm
from lewm_mpc.data.interop.importing_lerobot import import_lerobot

__all__ = ["CHUNK_ROWS", "META_ATTR", "export_swm", "import_lerobot", "import_npz", "import_swm"]
