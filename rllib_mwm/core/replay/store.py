"""Replay persistence and planning: finished episodes as compressed files, and
whether a replay of `replay.capacity` steps fits in RAM and on disk.

`EpisodeStore` keeps each finished episode once, as one `.npz` file (the arrays
of `rllib_mwm.core.replay.buffer`, zlib-compressed) in one directory, by default
`<trial dir>/replay/`. A checkpoint of `MWMReplayBuffer` then lists the files
(name, steps, CRC-32) instead of holding the arrays, so checkpoint time and disk
grow with new episodes only. A file is written under a temporary name and
renamed, so a kill never leaves a truncated file under a listed name.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import uuid
import zlib
from pathlib import Path

import numpy as np

Episode = dict[str, np.ndarray]
#: (file name, steps, CRC-32 of the file's bytes): what a checkpoint lists.
Record = tuple[str, int, int]


class EpisodeStore:
    """One directory of episode files."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser().absolute()
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, episode: Episode, index: int) -> Record:
        """Writes `episode` as a new file; `index` orders the names."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **episode)
        data = buffer.getvalue()
        name = f"{index:09d}_{uuid.uuid4().hex[:8]}.npz"
        temporary = self.directory / f".{name}.tmp"
        try:
            with open(temporary, "wb") as f:
                f.write(data)
            os.replace(temporary, self.directory / name)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            if not is_disk_full(error):
                raise
            # The newest checkpoint and the files it lists are intact.
            raise DiskFullError(
                f"no space left on device writing a replay episode to "
                f"{self.directory}; free disk space, then resume from the newest "
                "checkpoint (it is intact)"
            ) from error
        return name, len(episode["obs"]), zlib.crc32(data)

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)

    def adopt(self, source: Path, names: list[str]) -> None:
        """Hard-links (else copies) `names` from `source`, so that this store holds
        every file its checkpoints list."""
        for name in names:
            target = self.directory / name
            if target.exists():
                continue
            try:
                os.link(source / name, target)
            except OSError:
                shutil.copyfile(source / name, target)


def read_episode(directory: Path, record: Record) -> Episode:
    """Loads one listed file; raises `ValueError` if its bytes changed."""
    name, steps, crc = record
    data = (directory / name).read_bytes()
    if zlib.crc32(data) != crc:
        raise ValueError(
            f"replay episode {directory / name} is corrupt (CRC-32 differs from the "
            "checkpoint's); restore an older checkpoint"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        episode = {k: npz[k] for k in npz.files}
    if len(episode["obs"]) != steps:
        raise ValueError(f"replay episode {directory / name} has the wrong length")
    return episode


def find_episodes(candidates: list[Path], records: list[Record]) -> Path:
    """The first directory holding every listed file; else a one-line error."""
    names = [r[0] for r in records]
    for directory in candidates:
        if all((directory / n).is_file() for n in names):
            return directory
    first = candidates[0]
    missing = [n for n in names if not (first / n).is_file()]
    raise FileNotFoundError(
        f"the checkpoint's replay needs {len(names)} episode files in {first}, "
        f"{len(missing)} are missing (e.g. {missing[0]}); copy that directory "
        "(replay.directory, default <trial dir>/replay) beside the run or restore "
        "on the machine that wrote it"
    )


class DiskFullError(OSError):
    """No space left while writing replay episodes or a checkpoint (one line)."""


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, DiskFullError) or (
        isinstance(error, OSError)
        and (error.errno == errno.ENOSPC or "No space left" in str(error))
    )


# ------------------------------------------------------------------ planning
def bytes_per_step(obs_shape, action_dim: int) -> int:
    """One stored step: uint8 frame, float32 action and reward, three flags."""
    return int(np.prod(obs_shape)) + 4 * int(action_dim) + 4 + 3


def stored_bytes(directory: Path) -> int:
    """Bytes of the episode files already in `directory` (a resumed run)."""
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.glob("*.npz"))


def check_replay_fits(
    capacity: int,
    step_bytes: int,
    available_ram: int,
    directory: Path | None = None,
    free_disk: int | None = None,
) -> None:
    """Raises `ValueError` (one line, with the numbers and the key to change) if
    `capacity` steps do not fit in `available_ram`, or on the disk of
    `directory` (uncompressed size, the bound for frames that do not compress;
    files already there count as written)."""
    need = capacity * step_bytes
    fits = max(1, available_ram // step_bytes)
    if need > available_ram:
        raise ValueError(
            f"replay.capacity {capacity:,} steps x {step_bytes:,} B = {_gb(need)} "
            f"does not fit in the {_gb(available_ram)} of available RAM; lower "
            f"replay.capacity (at most {fits:,} here) or use a larger machine"
        )
    if directory is None or free_disk is None:
        return
    need_disk = need - stored_bytes(directory)
    if need_disk > free_disk:
        fits = max(1, (free_disk + stored_bytes(directory)) // step_bytes)
        raise ValueError(
            f"replay.capacity {capacity:,} steps x {step_bytes:,} B = {_gb(need)} "
            f"(uncompressed) does not fit in the {_gb(free_disk)} free on the disk "
            f"of {directory}; lower replay.capacity (at most {fits:,} here) or set "
            "replay.directory to a larger disk"
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


#: Action floats counted per step when the config names no action space.
DEFAULT_ACTION_DIM = 8


def config_step_bytes(config) -> int:
    """Bytes per stored step for an `MWMConfig`: its observation space, else the
    env's image size (`env_config.size`, else `mae.img_size`) × 3 channels."""
    if config.observation_space is not None:
        obs_shape = config.observation_space.shape
    else:
        size = (config.env_config or {}).get("size") or (config.mae["img_size"],) * 2
        obs_shape = (*size, config.mae["in_chans"])
    space = config.action_space
    action_dim = int(np.prod(space.shape)) if space is not None else DEFAULT_ACTION_DIM
    return bytes_per_step(obs_shape, action_dim)


def replay_directory(config, storage, trial_dir: str) -> Path | None:
    """Where a run's episode files go: `replay.directory` (one sub-directory per
    Tune trial), else `<trial dir>/replay`; None (checkpoints hold the arrays)
    where the trial directory is remote storage (s3://, gs://)."""
    import pyarrow.fs

    chosen = config.replay.get("directory")
    if chosen:
        base = Path(chosen).expanduser().absolute()
        return base / storage.trial_dir_name if storage is not None else base
    if storage is not None and not isinstance(
        storage.storage_filesystem, pyarrow.fs.LocalFileSystem
    ):
        return None
    return Path(trial_dir) / "replay"


def check_config_fits(config, directory: Path | None) -> None:
    """`check_replay_fits` with this machine's MemAvailable and the free disk of
    `directory` (its nearest existing parent)."""
    import psutil

    free = None
    if directory is not None:
        existing = directory
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free = shutil.disk_usage(existing).free
    check_replay_fits(
        config.replay["capacity"],
        config_step_bytes(config),
        psutil.virtual_memory().available,
        directory,
        free,
    )
