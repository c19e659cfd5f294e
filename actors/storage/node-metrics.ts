import fs from "node:fs";
import type { TcpServerStats } from "../../bus/tcp-server";
import type { ActorMetrics } from "../runtime/metrics";
import type { NodeLogic } from "./node-logic";
import { DramStore } from "./dram-store";
import { NvmeStore } from "./nvme-store";

/** What a storage node's metrics read, on each scrape. */
export interface NodeView {
  readonly logic: NodeLogic;
  /** The NVMe node's device or file (its device's statistics are reported). */
  readonly nvmePath?: string;
  /** The direct transport's counters; undefined without one. */
  tcp(): TcpServerStats | undefined;
}

/** Registers a storage node's gauges: capacity and use, extents, jobs, its direct transport, and its NVMe engine and device when it has one. */
export function registerNodeMetrics(m: ActorMetrics, v: NodeView): void {
  const store = v.logic.store;
  m.gauges("pocket_node_tier_info", "The node's storage tier (always 1).", ["tier"], () => [[{ tier: store.tier }, 1]]);
  m.gauge("pocket_node_capacity_bytes", "Bytes the node may hold.", () => store.capacityBytes);
  m.gauge("pocket_node_used_bytes", "Bytes of extents the node holds now (exact: a 1 KB extent counts 1 KB).", () => store.usedBytes);
  m.gauge("pocket_node_extents", "Extents the node holds now.", () => store.extentCount);
  m.gauge("pocket_node_jobs", "Jobs the node holds bytes for.", () => store.jobCount);
  m.gauge("pocket_node_freed_extents_remembered", "Freed extents remembered so that a grant cannot write them again.", () => v.logic.freedRemembered);
  m.tcpServer(() => v.tcp());
  if (store instanceof DramStore) {
    m.gauge("pocket_node_reads_held", "Reads of extents handed to a transport and not yet sent: their memory is not reused until they are.", () => store.readsOut);
    m.gauge("pocket_node_memory_idle_bytes", "Memory of freed extents kept for reuse by the next writes (bounded).", () => store.idleBytes);
    m.total("pocket_node_memory_reused_total", "Writes that reused the memory of a freed extent.", () => store.reusedBlocks);
  }
  if (store instanceof NvmeStore) registerNvmeMetrics(m, store, v.nvmePath);
}

function registerNvmeMetrics(m: ActorMetrics, store: NvmeStore, path: string | undefined): void {
  const engine = store.engine;
  m.gauge("pocket_nvme_inflight_requests", "Requests handed to the native engine and not yet completed.", () => engine.inflight);
  m.gauge("pocket_nvme_queue_depth", "The engine's io_uring queue depth.", () => engine.queueDepth);
  m.gauge("pocket_nvme_latency_critical_jobs", "Jobs with a latency reservation in the engine's QoS scheduler.", () => store.latencyCriticalJobs);
  const device = path === undefined ? undefined : blockDeviceOf(path);
  if (device === undefined) return;
  const field = (i: number, scale = 1) => (): number => (readBlockStat(device.statFile)[i] ?? 0) * scale;
  const deviceHelp = `of block device ${device.id} (the node's device, or the one its file lives on, shared with whatever else uses it)`;
  m.total("pocket_nvme_device_reads_total", `Reads completed ${deviceHelp}.`, field(BlockStat.reads));
  m.total("pocket_nvme_device_writes_total", `Writes completed ${deviceHelp}.`, field(BlockStat.writes));
  m.total("pocket_nvme_device_read_bytes_total", `Bytes read ${deviceHelp}.`, field(BlockStat.sectorsRead, 512));
  m.total("pocket_nvme_device_written_bytes_total", `Bytes written ${deviceHelp}.`, field(BlockStat.sectorsWritten, 512));
  m.total("pocket_nvme_device_busy_seconds_total", `Time with I/O in progress ${deviceHelp}.`, field(BlockStat.ioTicksMs, 1 / 1000));
  m.gauge("pocket_nvme_device_inflight", `I/Os in progress now ${deviceHelp}.`, field(BlockStat.inflight));
}

/** Fields of /sys/dev/block/<major>:<minor>/stat (the kernel's Documentation/block/stat.rst); sectors are 512 bytes. */
const BlockStat = { reads: 0, sectorsRead: 2, writes: 4, sectorsWritten: 6, inflight: 8, ioTicksMs: 9 } as const;

/** The block device a path is, or lives on, and its statistics file; undefined where sysfs has none (overlay and memory filesystems). */
export function blockDeviceOf(path: string): { readonly id: string; readonly statFile: string } | undefined {
  const st = fs.statSync(path);
  const dev = st.isBlockDevice() ? st.rdev : st.dev;
  // Linux's dev_t (32 bits here): major in bits 8-19, minor in bits 0-7 and 20-31 (glibc's gnu_dev_major and gnu_dev_minor).
  const major = Math.floor(dev / 0x100) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 0x1000) & 0xfff00);
  const id = `${major}:${minor}`;
  const statFile = `/sys/dev/block/${id}/stat`;
  return fs.existsSync(statFile) ? { id, statFile } : undefined;
}

/** The numbers of a block device's stat file. */
export function readBlockStat(statFile: string): number[] {
  return fs.readFileSync(statFile, "utf8").trim().split(/\s+/).map(Number);
}
