"""Which IOC folder runs an image on this host: berth's soft IOC for its own image
(`EMBEDDED_IMAGES`, any tag), else the Generic IOC folder BERTH_IOC_MAP maps it to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from berth import paths

EMBEDDED_IMAGES = ("ghcr.io/berth/softioc",)


def image_name(image: str) -> str:
    """The image without its tag or digest."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def ioc_map() -> dict[str, Path]:
    """Image → local Generic IOC folder, from BERTH_IOC_MAP (`image=folder,...`)."""
    mapping: dict[str, Path] = {}
    for item in os.environ.get("BERTH_IOC_MAP", "").split(","):
        image, sep, folder = item.strip().partition("=")
        if sep and image and folder:
            mapping[image.strip()] = Path(folder.strip()).expanduser()
    return mapping


@dataclass
class HowToRun:
    ioc_dir: Path | None  # a Generic IOC folder, or None for the embedded runtime
    reason: str = ""  # non-empty: not runnable here, and why

    @property
    def runnable(self) -> bool:
        return not self.reason


def how_to_run(image: str | None) -> HowToRun:
    """How an instance of `image` runs here (or why it cannot)."""
    if not image:
        return HowToRun(None, "no image in its values")
    if image_name(image) in EMBEDDED_IMAGES:
        return HowToRun(None)
    mapping = ioc_map()
    folder = mapping.get(image) or mapping.get(image_name(image))
    if folder is None:
        return HowToRun(None, f"needs image {image}: no local IOC is mapped for it "
                        f"(BERTH_IOC_MAP={image_name(image)}=/path/to/ioc)")
    if not (folder / paths.GENERIC_IOC_BINARY).is_file():
        return HowToRun(None, f"needs image {image}: mapped folder {folder} has no "
                        "bin/linux-x86_64/ioc")
    return HowToRun(folder)
