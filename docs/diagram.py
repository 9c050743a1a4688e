"""Draw docs/brain-mesh.svg: the demo brain's nodes, their regions, the spike topics
between them and the Zenoh router, from the real network description.

    python3 docs/diagram.py [OUT.svg]

The regions, projections and node assignment come from `evospikenet.brain`
(`default_brain`, `assign_regions`), so the picture follows the code. Plain SVG, no
plotting library: every forge renders it.
"""

from __future__ import annotations

import sys
from html import escape
from pathlib import Path

from evospikenet.brain import assign_regions, default_brain

NODES = ["node-1", "node-2", "node-3"]
NAMESPACE = "evospikenet"  # ZenohConfig's default topic prefix
WIDTH, HEIGHT = 900, 560
NODE_W, NODE_H, NODE_Y = 220, 150, 40
REGION_W, REGION_H = 176, 44
ROUTER_W, ROUTER_H, ROUTER_Y = 300, 70, 450
FONT = "font-family='Helvetica, Arial, sans-serif'"


def _text(x: float, y: float, s: str, size: int = 14, **attrs: str) -> str:
    extra = "".join(f" {k.replace('_', '-')}='{v}'" for k, v in attrs.items())
    return f"<text x='{x:.0f}' y='{y:.0f}' font-size='{size}' {FONT}{extra}>{escape(s)}</text>"


def _box(x: float, y: float, w: float, h: float, fill: str, stroke: str, dash: bool = False):
    d = " stroke-dasharray='6 4'" if dash else ""
    return (
        f"<rect x='{x:.0f}' y='{y:.0f}' width='{w:.0f}' height='{h:.0f}' rx='10' "
        f"fill='{fill}' stroke='{stroke}' stroke-width='2'{d}/>"
    )


def draw() -> str:
    """The SVG document, as text."""
    net = default_brain()
    owner = assign_regions(net, NODES)
    gap = (WIDTH - len(NODES) * NODE_W) / (len(NODES) + 1)
    node_x = {n: gap + i * (NODE_W + gap) for i, n in enumerate(NODES)}
    centre: dict[str, tuple[float, float]] = {}  # region -> centre of its box
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}'>",
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='8' "
        "markerHeight='8' orient='auto-start-reverse'><path d='M 0 0 L 10 5 L 0 10 z' "
        "fill='#b03a2e'/></marker></defs>",
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
    ]
    router_x = (WIDTH - ROUTER_W) / 2
    for n in NODES:
        x = node_x[n]
        # The node's link to the router: every message of the node goes over it, sealed.
        out.append(
            f"<line x1='{x + NODE_W / 2:.0f}' y1='{NODE_Y + NODE_H:.0f}' "
            f"x2='{router_x + ROUTER_W / 2:.0f}' y2='{ROUTER_Y:.0f}' stroke='#888' "
            "stroke-width='3'/>"
        )
    for n in NODES:
        x = node_x[n]
        out.append(_box(x, NODE_Y, NODE_W, NODE_H, "#eef3fb", "#2e5c9a"))
        out.append(_text(x + 12, NODE_Y + 24, f"{n} (one process)", 15, font_weight="bold"))
        mine = [r for r in net.region_names if owner[r] == n]
        for k, region in enumerate(mine):
            rx = x + (NODE_W - REGION_W) / 2
            ry = NODE_Y + 50 + k * (REGION_H + 10)
            out.append(_box(rx, ry, REGION_W, REGION_H, "#fdf2e9", "#ca6f1e"))
            out.append(_text(rx + 12, ry + 20, f"region {region}", 14))
            size = net.region(region).n
            out.append(_text(rx + 12, ry + 37, f"{size} integer LIF neurons", 11, fill="#555"))
            centre[region] = (rx + REGION_W / 2, ry + REGION_H / 2)
    out.append(_box(router_x, ROUTER_Y, ROUTER_W, ROUTER_H, "#eafaf1", "#1e8449"))
    out.append(_text(router_x + 16, ROUTER_Y + 28, "Zenoh router (evospikenet-router)", 15))
    out.append(
        _text(router_x + 16, ROUTER_Y + 50, "relays sealed messages, holds no key", 12, fill="#555")
    )
    # One spike topic per projection that crosses nodes, drawn as the logical flow.
    label_y = NODE_Y + NODE_H + 40
    for p in net.projections:
        if owner[p.source] == owner[p.target]:
            continue
        (x1, y1), (x2, y2) = centre[p.source], centre[p.target]
        # Two directions between the same regions get their own anchors and depths.
        shift, lift = (-18, 0) if x2 > x1 else (18, 40)
        x1, x2 = x1 + shift, x2 + shift
        out.append(
            f"<path d='M {x1:.0f} {y1 + REGION_H / 2:.0f} C {x1:.0f} {label_y + 40 + lift:.0f} "
            f"{x2:.0f} {label_y + 40 + lift:.0f} {x2:.0f} {y2 + REGION_H / 2 + 2:.0f}' "
            "fill='none' stroke='#b03a2e' stroke-width='2' stroke-dasharray='5 3' "
            "marker-end='url(#arrow)'/>"
        )
        topic = f"{NAMESPACE}/spikes/{p.source}/{p.target}"
        out.append(_text((x1 + x2) / 2 - 110, label_y + 60 + lift, topic, 13, fill="#b03a2e"))
    out.append(
        _text(
            20,
            HEIGHT - 12,
            "Dashed: spike topics (sorted uint32 indices per step, AES-256-GCM). "
            "Grey: each node's Zenoh link.",
            12,
            fill="#333",
        )
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("brain-mesh.svg")
    out.write_text(draw())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
