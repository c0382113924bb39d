"""Open a run's report.html in a real headless browser and save a screenshot of it.

    .venv/bin/python benchmarks/report_screenshot.py RUN_DIR [--out FILE.png] [--width 1280]

RUN_DIR is a run or sweep directory written by ``kinject bench`` (its report.html; run
``kinject report RUN_DIR`` first for a directory written before report.html existed). The browser
is Debian's ``chromium``: when no chromium is on the PATH this check installs it with apt-get (as
root, the way this project's machines run), so nothing is installed by hand. The page is drawn
offline from the file itself (``file://``); the screenshot is cropped below the page's last
non-white row. The summary line gives the screenshot's size and how much of it is not blank, so a
page that failed to render (all white) shows at once.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def install_chromium() -> str:
    """Debian's chromium through apt-get; the path of its binary."""
    print("chromium not found: installing Debian's chromium with apt-get", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "fonts-dejavu-core"],
                   check=True)
    browser = find_browser()
    if browser is None:
        sys.exit("apt-get installed chromium but no chromium binary is on the PATH")
    return browser


def screenshot(browser: str, page: Path, out: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={out}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)


def crop_blank_bottom(path: Path) -> tuple[int, int, float]:
    """Crop the screenshot below its last non-white row; (width, height, share of non-white pixels)."""
    from PIL import Image, ImageChops

    image = Image.open(path).convert("RGB")
    box = ImageChops.difference(image, Image.new("RGB", image.size, "white")).getbbox()
    if box is None:
        return image.width, image.height, 0.0
    image = image.crop((0, 0, image.width, min(image.height, box[3] + 24)))
    image.save(path)
    inked = sum(image.convert("L").histogram()[:250])
    return image.width, image.height, inked / (image.width * image.height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, help="screenshot PNG (default: RUN_DIR/report.png)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=6000, help="window height before cropping (px)")
    args = parser.parse_args()
    page = args.run_dir / "report.html"
    if not page.is_file():
        sys.exit(f"{page}: no such file (run `kinject report {args.run_dir}` first)")
    out = args.out or args.run_dir / "report.png"
    browser = find_browser() or install_chromium()
    version = subprocess.run([browser, "--version"], capture_output=True, text=True).stdout.strip()
    start = time.perf_counter()
    screenshot(browser, page, out, args.width, args.height)
    seconds = time.perf_counter() - start
    width, height, inked = crop_blank_bottom(out)
    print(f"{version}: {page} ({page.stat().st_size / 1024:.0f} KiB) -> {out}, {width}x{height} px, "
          f"{inked:.1%} of it not blank, {seconds:.1f} s")


if __name__ == "__main__":
    main()
