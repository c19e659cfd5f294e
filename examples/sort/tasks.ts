import type { Checksum } from "./records";

/** Messages between the sort driver and its lambda-like workers (over the child-process IPC channel). */
export type Task =
  | { readonly kind: "map"; readonly id: number; readonly index: number; readonly records: number; readonly firstIndex: number; readonly partitions: number }
  | { readonly kind: "reduce"; readonly id: number; readonly partition: number; readonly maps: number }
  | { readonly kind: "validate"; readonly id: number; readonly partition: number };

export interface TaskResult {
  readonly checksum: Checksum;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** First and last key of a sorted partition (hex), for the cross-partition order check. */
  readonly firstKey?: string;
  readonly lastKey?: string;
  readonly sorted?: boolean;
}

export type WorkerMessage =
  | { readonly kind: "ready" }
  | { readonly kind: "progress"; readonly id: number; readonly bytes: number }
  | { readonly kind: "done"; readonly id: number; readonly result: TaskResult }
  | { readonly kind: "failed"; readonly id: number; readonly code: string; readonly message: string };

export const paths = {
  mapOutput: (map: number, partition: number): string => `map/${map}/part-${String(partition).padStart(4, "0")}`,
  output: (partition: number): string => `out/part-${String(partition).padStart(4, "0")}`,
};
