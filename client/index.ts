/**
 * The Pocket SDK: what a lambda or a job driver imports to store a job's
 * ephemeral data in a Pocket cluster (the `@pocket-on-nats/sdk` package).
 *
 * @example
 *   import { PocketClient, credentialsFromEnv } from "@pocket-on-nats/sdk";
 *   const pocket = await PocketClient.connect({ servers: process.env.POCKET_NATS_URL!, credentials: credentialsFromEnv() });
 *   const job = pocket.job(process.env.POCKET_TOKEN!);
 *   await job.put("shuffle/part-0", bytes);
 *   await pocket.close();
 */
export {
  ClientTransport, credentialsFromEnv, PocketClient, PocketJob, tlsCaFromEnv,
  type Data, type DirectoryCount, type GetOptions, type ListAllOptions, type ListEntry, type ListOptions, type ListPage, type ObjectStat,
  type OperationOptions, type PocketOptions, type PutOptions, type PutResult, type Range, type RecursiveOptions, type RegisteredJob,
  type RegisterOptions, type StreamPutOptions,
} from "./pocket";
export { defaultRetryPolicy, type RetryEvent, type RetryOptions, type RetryPolicy } from "./retry";
export { AbortError } from "../bus/caller";
export {
  AlreadyExistsError, BusyError, CapacityExceededError, ErrorCode, IntegrityError, InternalError, InvalidArgumentError, isPocketError,
  NodeUnavailableError, NotEmptyError, NotFoundError, PocketError, TimeoutError, TooLargeError, UnauthorizedError, UnknownJobError,
} from "../schemas/errors";
export type { JobHints, NodeInfo, Weight } from "../schemas/operations";
