import type { TcpServerStats } from "../../bus/tcp-server";
import type { ActorMetrics } from "../runtime/metrics";
import type { NodeDirectory } from "../runtime/node-directory";
import type { FreeQueue } from "./free-queue";
import type { JobState, ShardLogic } from "./shard-logic";

/** Jobs with a series of their own in the per-job metrics: the largest by bytes (a shard may hold 100 000 jobs; a scrape must not). */
export const jobsReportedMax = 20;

/** What a shard's metrics read, on each scrape. */
export interface ShardView {
  readonly logic: ShardLogic;
  readonly frees: FreeQueue;
  readonly nodes: NodeDirectory;
  /** The direct transport's counters; undefined without one. */
  tcp(): TcpServerStats | undefined;
}

/** Registers a shard's gauges: jobs, objects and bytes (and the largest jobs'), inline use, writes in progress, frees, nodes, its direct transport. */
export function registerShardMetrics(m: ActorMetrics, v: ShardView): void {
  const { logic, frees } = v;
  const sum = (of: (j: JobState) => number) => (): number => {
    let n = 0;
    for (const j of logic.jobs()) n += of(j);
    return n;
  };
  m.gauge("pocket_shard_jobs", "Jobs whose namespace the shard holds.", () => logic.jobCount);
  m.gauge("pocket_shard_objects", "Objects committed, over all the shard's jobs.", sum((j) => j.ns.objects));
  m.gauge("pocket_shard_bytes", "Bytes of committed objects, over all the shard's jobs.", sum((j) => j.ns.bytes));
  m.gauge("pocket_shard_pending_writes", "Puts laid out and not yet committed or expired (writes reserved ahead included).", sum((j) => j.pending.size));
  m.gauge("pocket_shard_inline_bytes", "Bytes of small objects held in the shard itself.", () => logic.inlineBytes);
  m.gauge("pocket_shard_inline_capacity_bytes", "Most bytes of small objects the shard holds.", () => logic.inlineCapacityBytes);
  m.gauges("pocket_shard_job_objects", `Objects of each of the ${jobsReportedMax} jobs with the most bytes.`, ["job"], () =>
    topJobs(logic.jobs(), jobsReportedMax).map((j) => [{ job: j.jobId }, j.ns.objects] as const));
  m.gauges("pocket_shard_job_bytes", `Bytes of each of the ${jobsReportedMax} jobs with the most bytes.`, ["job"], () =>
    topJobs(logic.jobs(), jobsReportedMax).map((j) => [{ job: j.jobId }, j.ns.bytes] as const));
  m.gauge("pocket_shard_free_queue_depth", "Batches of extent frees waiting to be sent to nodes.", () => frees.queued);
  m.gauge("pocket_shard_frees_inflight", "Batches of extent frees being sent.", () => frees.inflight);
  m.total("pocket_shard_frees_dropped_extents_total", "Extents not freed because the free queue was full (freed when their job ends).", () => frees.dropped);
  m.gauges("pocket_shard_nodes", "Storage nodes the shard knows from their heartbeats, live or not.", ["live"], () => {
    let live = 0;
    const all = v.nodes.all();
    for (const n of all) if (v.nodes.isLive(n.heartbeat.nodeId)) live++;
    return [[{ live: "true" }, live], [{ live: "false" }, all.length - live]];
  });
  m.tcpServer(() => v.tcp());
}

/** The `n` jobs with the most bytes (ties: more objects first), in that order; one pass, O(jobs × n) at worst. */
export function topJobs(jobs: Iterable<JobState>, n: number): JobState[] {
  const top: JobState[] = [];
  if (n <= 0) return top;
  const before = (a: JobState, b: JobState): boolean => a.ns.bytes > b.ns.bytes || (a.ns.bytes === b.ns.bytes && a.ns.objects > b.ns.objects);
  for (const j of jobs) {
    if (top.length === n && !before(j, top[n - 1]!)) continue;
    let i = Math.min(top.length, n - 1);
    while (i > 0 && before(j, top[i - 1]!)) i--;
    top.splice(i, 0, j);
    if (top.length > n) top.pop();
  }
  return top;
}
