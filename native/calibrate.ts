import fs from "node:fs";
import { BlockBytes, NvmeEngine, type DeviceModel } from "./index";

export interface CalibrateOptions {
  readonly path: string;
  /** For a file: its size (created if missing). */
  readonly sizeBytes?: number;
  /** The p95 device latency the model is for. */
  readonly latencyLimitUs: number;
  /** Seconds per load step. */
  readonly stepSeconds: number;
  /** Share of reads in the mixed workload. */
  readonly readRatio: number;
}

export interface LoadPoint {
  readonly workload: "read" | "mixed";
  readonly offeredIops: number;
  readonly achievedIops: number;
  readonly p95Us: number;
}

export interface CalibratedModel extends DeviceModel {
  readonly measuredAt: string;
  readonly path: string;
  readonly points: LoadPoint[];
}

/**
 * Measures p95 device latency (submission to completion, as the engine
 * sees it) against offered load, open loop, for 4 KiB random reads and for
 * a read/write mix; the highest load within the latency limit gives the
 * token rate, and the mix gives what a write costs in reads.
 */
export async function calibrate(o: CalibrateOptions, progress: (p: LoadPoint) => void = () => undefined): Promise<CalibratedModel> {
  // The engine on a thread of its own: it reaps each completion as it comes, so the latency it measures is
  // the device's. On the JavaScript thread completions wait for the loop, which here is busy issuing the
  // open-loop load, and the model would charge the device for that (it came out tens of times too slow).
  const engine = NvmeEngine.open({ path: o.path, sizeBytes: o.sizeBytes, queueDepth: 128, thread: true, model: { tokensPerSec: 1e12, readCost: 100, writeCost: 100, latencyLimitUs: 1 } });
  const points: LoadPoint[] = [];
  try {
    engine.setMode("fifo");
    engine.addBestEffort(1);
    const blocks = Math.floor(engine.capacityBytes / BlockBytes);
    // Ceiling first: closed loop, 64 in flight.
    const ceiling = await closedLoop(engine, blocks, Math.min(1, o.stepSeconds));
    const run = async (workload: "read" | "mixed"): Promise<number> => {
      let best = 0;
      for (const fraction of [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]) {
        const offered = Math.max(100, Math.round(ceiling * fraction));
        const p = await openLoop(engine, blocks, offered, o.stepSeconds, workload === "read" ? 1 : o.readRatio);
        const point: LoadPoint = { workload, offeredIops: offered, achievedIops: p.achieved, p95Us: p.p95Us };
        points.push(point);
        progress(point);
        if (p.p95Us <= o.latencyLimitUs && p.achieved >= offered * 0.9) best = p.achieved;
        else break;
      }
      return best;
    };
    const readIops = await run("read");
    const mixedIops = await run("mixed");
    const readCost = 100;
    const tokensPerSec = Math.max(readIops, 100) * readCost;
    // The mix at its best load spends the same token rate: r·C_read + (1−r)·C_write = tokens / mixed IOPS.
    const perOp = tokensPerSec / Math.max(mixedIops, 1);
    const writeCost = Math.min(5000, Math.max(readCost, Math.round((perOp - o.readRatio * readCost) / (1 - o.readRatio))));
    return { tokensPerSec, readCost, writeCost, latencyLimitUs: o.latencyLimitUs, measuredAt: new Date().toISOString(), path: o.path, points };
  } finally {
    await engine.close();
  }
}

async function closedLoop(e: NvmeEngine, blocks: number, seconds: number): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  let ops = 0;
  let x = 1;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (Date.now() < deadline) {
      x = (x * 1103515245 + 12345) >>> 0;
      await e.read(1, (x % blocks) * BlockBytes, BlockBytes);
      ops++;
    }
  }));
  return ops / seconds;
}

async function openLoop(e: NvmeEngine, blocks: number, iops: number, seconds: number, readRatio: number): Promise<{ achieved: number; p95Us: number }> {
  const lat: number[] = [];
  const pending: Promise<void>[] = [];
  const start = Date.now();
  const deadline = start + seconds * 1000;
  const data = Buffer.alloc(BlockBytes, 0x42);
  let issued = 0;
  let x = 7;
  while (Date.now() < deadline) {
    const due = Math.floor(((Date.now() - start) / 1000) * iops);
    while (issued < due && pending.length < 100_000) {
      x = (x * 1103515245 + 12345) >>> 0;
      const offset = (x % blocks) * BlockBytes;
      const write = (x >>> 8) % 1000 >= readRatio * 1000;
      pending.push((write ? e.writeTimed(1, offset, data) : e.readTimed(1, offset, BlockBytes)).then((r) => { lat.push(r.latencyNs / 1000); }, () => undefined));
      issued++;
    }
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(pending);
  const sorted = Float64Array.from(lat).sort();
  return { achieved: lat.length / seconds, p95Us: sorted.length ? sorted[Math.floor(sorted.length * 0.95)]! : 0 };
}

/** Reads a model written by `pocket calibrate`. */
export function readDeviceModel(file: string): DeviceModel {
  const m = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<DeviceModel>;
  for (const k of ["tokensPerSec", "readCost", "writeCost", "latencyLimitUs"] as const) {
    if (typeof m[k] !== "number" || !(m[k]! > 0)) throw new Error(`${file}: device model needs a positive ${k}`);
  }
  return { tokensPerSec: m.tokensPerSec!, readCost: m.readCost!, writeCost: m.writeCost!, latencyLimitUs: m.latencyLimitUs! };
}
