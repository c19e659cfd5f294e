/**
 * A sort worker: behaves like a warm serverless function, taking one task at
 * a time from the driver and keeping its Pocket connection between tasks.
 */
import { isPocketError } from "../../schemas/errors";
import { credentialsFromEnv, PocketClient } from "../../client/pocket";
import { mapLimit } from "../../lib/concurrency";
import { checksum, emptyChecksum, firstUnsorted, generateRecords, keyHex, partition, recordBytes, sortRecords } from "./records";
import { paths, type Task, type TaskResult, type WorkerMessage } from "./tasks";

const fetchesInflightMax = 4;

function send(m: WorkerMessage): void {
  process.send!(m);
}

async function run(client: PocketClient, token: string, task: Task): Promise<TaskResult> {
  const job = client.job(token);
  switch (task.kind) {
    case "map": {
      const records = generateRecords(task.records, task.index + 1, task.firstIndex);
      const sum = checksum(records);
      const parts = partition(records, task.partitions);
      let written = 0;
      await mapLimit(parts, fetchesInflightMax, async (bytes, p) => {
        await job.put(paths.mapOutput(task.index, p), bytes);
        written += bytes.byteLength;
        send({ kind: "progress", id: task.id, bytes: bytes.byteLength });
      });
      return { checksum: sum, bytesRead: 0, bytesWritten: written };
    }
    case "reduce": {
      const inputs = await mapLimit(Array.from({ length: task.maps }, (_, i) => i), fetchesInflightMax, async (m) => {
        const b = await job.get(paths.mapOutput(m, task.partition));
        send({ kind: "progress", id: task.id, bytes: b.byteLength });
        return b;
      });
      const all = Buffer.concat(inputs);
      const sorted = sortRecords(all);
      await job.put(paths.output(task.partition), sorted);
      const n = sorted.byteLength / recordBytes;
      return {
        checksum: checksum(sorted), bytesRead: all.byteLength, bytesWritten: sorted.byteLength,
        firstKey: n > 0 ? keyHex(sorted, 0) : undefined, lastKey: n > 0 ? keyHex(sorted, n - 1) : undefined,
        sorted: firstUnsorted(sorted) < 0,
      };
    }
    case "validate": {
      const out = await job.get(paths.output(task.partition));
      send({ kind: "progress", id: task.id, bytes: out.byteLength });
      const n = out.byteLength / recordBytes;
      return {
        checksum: n > 0 ? checksum(out) : emptyChecksum(), bytesRead: out.byteLength, bytesWritten: 0,
        firstKey: n > 0 ? keyHex(out, 0) : undefined, lastKey: n > 0 ? keyHex(out, n - 1) : undefined,
        sorted: firstUnsorted(out) < 0,
      };
    }
  }
}

async function main(): Promise<void> {
  const url = process.env["POCKET_NATS_URL"];
  const token = process.env["POCKET_TOKEN"];
  if (!url || !token || !process.send) throw new Error("run by the sort driver: needs POCKET_NATS_URL, POCKET_TOKEN and an IPC channel");
  const client = await PocketClient.connect({ servers: url, name: `sort-worker-${process.pid}`, credentials: credentialsFromEnv() });
  process.on("message", (task: Task) => {
    run(client, token, task).then(
      (result) => send({ kind: "done", id: task.id, result }),
      (e: unknown) => send({ kind: "failed", id: task.id, code: isPocketError(e) ? e.code : "Error", message: e instanceof Error ? e.message : String(e) }),
    );
  });
  process.on("disconnect", () => {
    void client.close().finally(() => process.exit(0));
  });
  send({ kind: "ready" });
}

main().catch((e: unknown) => {
  process.stderr.write(`sort worker: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
