/** A horizontal bar chart of ratios (ours ÷ reference) as an SVG document, with the target line at 1×. */
export interface Bar {
  readonly label: string;
  /** How we compare: > 1 is better than the reference, whatever the unit. */
  readonly ratio: number;
  readonly target: number;
  readonly note: string;
}

/** Text safe inside SVG/XML. */
export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A standalone SVG document: white background, title and subtitle at the top, then `body`'s elements. */
export function svgDocument(width: number, height: number, title: string, subtitle: string, body: readonly string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="24" font-size="17" font-weight="bold">${esc(title)}</text>
<text x="20" y="44" font-size="12" fill="#444">${esc(subtitle)}</text>
${body.join("\n")}
</svg>
`;
}

export function ratioChart(title: string, subtitle: string, bars: readonly Bar[]): string {
  const left = 330;
  const width = 920;
  const rowH = 26;
  const top = 70;
  const plotW = width - left - 170;
  const max = Math.max(2, ...bars.map((b) => Math.min(b.ratio, 4)), ...bars.map((b) => b.target));
  const x = (v: number): number => left + (Math.min(v, max) / max) * plotW;
  const height = top + bars.length * rowH + 50;
  const rows = bars.map((b, i) => {
    const y = top + i * rowH;
    const color = b.target === 0 ? "#7f8fa6" : b.ratio >= b.target ? "#3a8f5c" : "#c0504d";
    return [
      `<text x="${left - 8}" y="${y + 17}" text-anchor="end" font-size="12">${esc(b.label)}</text>`,
      `<rect x="${left}" y="${y + 5}" width="${Math.max(1, x(b.ratio) - left)}" height="${rowH - 10}" fill="${color}"/>`,
      b.target === 0 ? "" : `<line x1="${x(b.target)}" x2="${x(b.target)}" y1="${y + 2}" y2="${y + rowH - 2}" stroke="#222" stroke-dasharray="3,2"/>`,
      `<text x="${x(b.ratio) + 6}" y="${y + 17}" font-size="11">${b.ratio.toFixed(2)}× ${esc(b.note)}</text>`,
    ].join("");
  });
  const ticks = [0, 0.5, 1, 1.5, 2, 3, 4].filter((t) => t <= max).map((t) =>
    `<line x1="${x(t)}" x2="${x(t)}" y1="${top}" y2="${top + bars.length * rowH}" stroke="#ddd"/>` +
    `<text x="${x(t)}" y="${top + bars.length * rowH + 16}" font-size="11" text-anchor="middle">${t}×</text>`);
  return svgDocument(width, height, title, subtitle, [
    ...ticks,
    ...rows,
    `<text x="20" y="${height - 10}" font-size="11" fill="#444">ours ÷ reference, higher is better (latency and memory: reference ÷ ours). Dashed: target. Green met, red missed, grey no target.</text>`,
  ]);
}
