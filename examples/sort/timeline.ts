import type { PocketClient } from "../../client/pocket";
import { esc, svgDocument } from "../../lib/chart";

/** One look at the cluster: every node's state and utilisation. */
export interface Sample {
  readonly tMs: number;
  readonly nodes: ReadonlyArray<{ nodeId: string; state: string; cpu: number; network: number; capacity: number; usedBytes: number; capacityBytes: number }>;
}

export interface Mark {
  readonly tMs: number;
  readonly label: string;
  readonly kind: string;
}

export interface Phase {
  readonly name: string;
  readonly fromMs: number;
  readonly toMs: number;
}

/**
 * Samples the controller's view of the nodes every `everyMs` (bounded:
 * at most `samplesMax` samples; past that, every other one is dropped and
 * the period doubles), for the scaling timeline.
 */
export class TimelineRecorder {
  readonly samples: Sample[] = [];
  #timer: NodeJS.Timeout | undefined;
  #every: number;
  #busy = false;

  constructor(private readonly client: PocketClient, private readonly originMs: number, everyMs = 500, private readonly samplesMax = 2_000) {
    this.#every = everyMs;
  }

  start(): void {
    const tick = async (): Promise<void> => {
      if (this.#busy) return;
      this.#busy = true;
      try {
        const nodes = await this.client.listNodes();
        this.samples.push({
          tMs: Date.now() - this.originMs,
          nodes: nodes.map((n) => ({
            nodeId: n.nodeId, state: n.state, cpu: n.utilisation.cpu, network: n.utilisation.network, capacity: n.utilisation.capacity,
            usedBytes: n.usedBytes, capacityBytes: n.capacityBytes,
          })),
        });
        if (this.samples.length > this.samplesMax) this.#thin();
      } catch {
        // The controller may be busy or restarting; the next look will do.
      } finally {
        this.#busy = false;
      }
    };
    void tick();
    this.#timer = setInterval(() => void tick(), this.#every);
  }

  #thin(): void {
    for (let i = this.samples.length - 1; i > 0; i -= 2) this.samples.splice(i, 1);
    this.#every *= 2;
    if (this.#timer) {
      clearInterval(this.#timer);
      this.start();
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }
}


/**
 * The scaling timeline as an SVG: nodes by state (stacked) and the tier's
 * utilisation (capacity, CPU, network) over time, with the job's phases
 * as bands and the controller's decisions as marks.
 */
export function timelineChart(title: string, subtitle: string, samples: readonly Sample[], phases: readonly Phase[], marks: readonly Mark[]): string {
  const width = 960, left = 60, right = 30, top = 70;
  const nodesH = 170, utilH = 170, gap = 50;
  const plotW = width - left - right;
  const endMs = 1.04 * Math.max(1, ...samples.map((s) => s.tMs), ...phases.map((p) => p.toMs), ...marks.map((m) => m.tMs));
  const x = (t: number): number => left + (t / endMs) * plotW;
  const maxNodes = Math.max(1, ...samples.map((s) => s.nodes.filter((n) => n.state !== "removed").length));
  const nodesY0 = top + nodesH;
  const yNodes = (n: number): number => nodesY0 - (n / (maxNodes + 1)) * nodesH;
  const utilTop = nodesY0 + gap;
  const utilY0 = utilTop + utilH;
  const yUtil = (f: number): number => utilY0 - Math.min(1.2, f) / 1.2 * utilH;
  const states = [["active", "#3a8f5c"], ["provisioning", "#e0a030"], ["draining", "#7f8fa6"], ["failed", "#c0504d"]] as const;

  // Stacked areas of node counts by state, as steps.
  const stacks = states.map(([state, color], k) => {
    const below = (s: Sample): number => states.slice(0, k).reduce((acc, [st]) => acc + s.nodes.filter((n) => n.state === st).length, 0);
    const upper: string[] = [];
    const lower: string[] = [];
    samples.forEach((s, i) => {
      const next = samples[i + 1]?.tMs ?? s.tMs;
      const lo = below(s);
      const hi = lo + s.nodes.filter((n) => n.state === state).length;
      upper.push(`${x(s.tMs)},${yNodes(hi)} ${x(next)},${yNodes(hi)}`);
      lower.unshift(`${x(next)},${yNodes(lo)} ${x(s.tMs)},${yNodes(lo)}`);
    });
    return samples.length ? `<polygon points="${[...upper, ...lower].join(" ")}" fill="${color}" fill-opacity="0.85"/>` : "";
  });
  // Tier utilisation: over active nodes, capacity as bytes/bytes, CPU and network as means.
  const series = (f: (s: Sample) => number, color: string, dash = ""): string => {
    const pts = samples.map((s) => `${x(s.tMs)},${yUtil(f(s))}`).join(" ");
    return `<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ""}/>`;
  };
  const active = (s: Sample) => s.nodes.filter((n) => n.state === "active");
  const mean = (s: Sample, k: "cpu" | "network"): number => { const a = active(s); return a.length ? a.reduce((acc, n) => acc + n[k], 0) / a.length : 0; };
  const cap = (s: Sample): number => { const a = active(s); const c = a.reduce((acc, n) => acc + n.capacityBytes, 0); return c ? a.reduce((acc, n) => acc + n.usedBytes, 0) / c : 0; };

  const bands = phases.map((p, i) => `<rect x="${x(p.fromMs)}" y="${top}" width="${Math.max(1, x(p.toMs) - x(p.fromMs))}" height="${utilY0 - top}" fill="${i % 2 ? "#eef3fb" : "#f6f0fa"}"/>` +
    `<text x="${(x(p.fromMs) + x(p.toMs)) / 2}" y="${top - 6 - (i % 2) * 12}" font-size="11" text-anchor="middle" fill="#555">${esc(p.name)}</text>`);
  const markColor: Record<string, string> = { "node.launch": "#e0a030", "node.active": "#3a8f5c", "node.draining": "#7f8fa6", "node.removed": "#222", "scale.out": "#c0504d", "scale.in": "#4060c0", "job.registered": "#444", "job.deregistered": "#444" };
  const markLines = marks.map((m, i) => `<line x1="${x(m.tMs)}" x2="${x(m.tMs)}" y1="${top}" y2="${utilY0}" stroke="${markColor[m.kind] ?? "#999"}" stroke-dasharray="2,3"/>` +
    `<text x="${x(m.tMs) + (x(m.tMs) > left + plotW * 0.85 ? -3 : 3)}" y="${utilY0 + 14 + (i % 4) * 12}" font-size="10" text-anchor="${x(m.tMs) > left + plotW * 0.85 ? "end" : "start"}" fill="${markColor[m.kind] ?? "#666"}">${esc(m.label)}</text>`);
  const nodeTicks = Array.from({ length: maxNodes + 1 }, (_, n) => `<text x="${left - 8}" y="${yNodes(n) + 4}" font-size="10" text-anchor="end">${n}</text><line x1="${left}" x2="${left + plotW}" y1="${yNodes(n)}" y2="${yNodes(n)}" stroke="#eee"/>`);
  const utilTicks = [0, 0.6, 0.8, 1].map((f) => `<text x="${left - 8}" y="${yUtil(f) + 4}" font-size="10" text-anchor="end">${Math.round(f * 100)}%</text><line x1="${left}" x2="${left + plotW}" y1="${yUtil(f)}" y2="${yUtil(f)}" stroke="${f === 0.6 || f === 0.8 ? "#bbb" : "#eee"}" ${f === 0.6 || f === 0.8 ? 'stroke-dasharray="4,3"' : ""}/>`);
  const timeTicks: string[] = [];
  const step = endMs > 120_000 ? 20_000 : endMs > 40_000 ? 10_000 : 5_000;
  for (let t = 0; t <= endMs; t += step) timeTicks.push(`<text x="${x(t)}" y="${utilY0 + 64}" font-size="10" text-anchor="middle">${t / 1000}s</text>`);
  const height = utilY0 + 100;
  const legend = [
    ...states.map(([s, c], i) => `<rect x="${left + i * 125}" y="${height - 22}" width="10" height="10" fill="${c}"/><text x="${left + i * 125 + 14}" y="${height - 13}" font-size="11">${s} nodes</text>`),
    `<line x1="${left + 500}" x2="${left + 520}" y1="${height - 17}" y2="${height - 17}" stroke="#1f5fa0" stroke-width="2"/><text x="${left + 524}" y="${height - 13}" font-size="11">capacity used</text>`,
    `<line x1="${left + 620}" x2="${left + 640}" y1="${height - 17}" y2="${height - 17}" stroke="#c0504d" stroke-width="2"/><text x="${left + 644}" y="${height - 13}" font-size="11">CPU</text>`,
    `<line x1="${left + 690}" x2="${left + 710}" y1="${height - 17}" y2="${height - 17}" stroke="#30a0a0" stroke-width="2" stroke-dasharray="5,3"/><text x="${left + 714}" y="${height - 13}" font-size="11">network</text>`,
  ];
  return svgDocument(width, height, title, subtitle, [
    ...bands,
    ...nodeTicks,
    `<text x="14" y="${top + nodesH / 2}" font-size="11" transform="rotate(-90 14 ${top + nodesH / 2})" text-anchor="middle">storage nodes</text>`,
    ...stacks,
    ...utilTicks,
    `<text x="14" y="${utilTop + utilH / 2}" font-size="11" transform="rotate(-90 14 ${utilTop + utilH / 2})" text-anchor="middle">utilisation (band 60–80%)</text>`,
    series(cap, "#1f5fa0"),
    series((s) => mean(s, "cpu"), "#c0504d"),
    series((s) => mean(s, "network"), "#30a0a0", "5,3"),
    ...markLines,
    ...timeTicks,
    ...legend,
  ]);
}
