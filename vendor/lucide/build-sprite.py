#!/usr/bin/env python3
"""Builds assets/img/icons.svg, the web app's icon sprite, from Lucide's SVGs.

    npm pack lucide-static && tar xzf lucide-static-*.tgz
    python3 vendor/lucide/build-sprite.py package/

Each icon becomes a <symbol id="name">; pages use it as
<svg class="icon"><use href=".../icons.svg#name"/></svg>, drawn in currentColor.
Add a name to ICONS to make an icon available.
"""

import json
import pathlib
import re
import sys

ICONS = """
archive arrow-down arrow-up at-sign bell bell-off camera check check-check
chevron-left chevron-right circle-alert circle-help clock copy crown
door-open download ellipsis file file-archive file-audio file-spreadsheet
file-text file-video globe hash image info keyboard link lock log-out mail
menu message-circle mic moon paperclip pause pencil phone pin play plus
refresh-cw reply search send settings shield smile square sun trash-2
triangle-alert user user-minus user-plus users video wifi-off x zoom-in
zoom-out
""".split()


def main(package: pathlib.Path) -> None:
    version = json.loads((package / "package.json").read_text())["version"]
    lines = [
        '<svg xmlns="http://www.w3.org/2000/svg">',
        f"<!-- Lucide icons {version} (ISC licence: vendor/lucide/LICENSE); "
        "built by vendor/lucide/build-sprite.py -->",
    ]
    for name in sorted(ICONS):
        svg = (package / "icons" / f"{name}.svg").read_text()
        body = svg[svg.index(">", svg.index("<svg")) + 1 : svg.rindex("</svg>")]
        body = re.sub(r"\s+", " ", body).strip().replace(" />", "/>")
        lines.append(
            f'<symbol id="{name}" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
            f'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">{body}</symbol>'
        )
    lines.append("</svg>")
    out = pathlib.Path(__file__).resolve().parents[2] / "assets" / "img" / "icons.svg"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
