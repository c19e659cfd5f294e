/**
 * The wire contract in words and numbers: everything a client in another
 * language needs besides the operations' schemas (body and frame layouts,
 * the handshake, chunking over NATS, the write protocol, ranges, paths,
 * checksums, errors, what a lambda connects with). One source for the
 * `protocol` object of the JSON Schema export and for docs/contract.md;
 * numbers and names come from the code that uses them.
 */
import { ErrorCode, ErrorInfo } from "../schemas/errors";
import { BinaryMeta, encodeBinary, BinaryLayouts } from "../schemas/codec";
import { ShardOps, WireLimits, writesAheadMax } from "../schemas/operations";
import { encodeBody, encodeJson, metaBytesMax } from "../bus/body";
import { encodeFrame, FrameKind } from "../bus/frame";
import { helloFrameBytesMax, helloMessage, TransportAuth, TransportHello } from "../bus/handshake";
import { chunkBytesMin, chunkHeadroomBytes, defaultChunkLimits } from "../bus/nats-chunks";
import { ChunkHeaders, ErrorHeaders, Inboxes, Subjects } from "../bus/subjects";
import { lambdaPermissions } from "../bus/credentials";
import { Defaults } from "../actors/runtime/config";

/** One part of the contract: prose, and the structured facts a client is written from. */
export interface Section {
  readonly title: string;
  /** Paragraphs. */
  readonly text: readonly string[];
  /** A byte layout, field by field, in order. */
  readonly layout?: readonly LayoutField[];
  /** What to do, in order. */
  readonly steps?: readonly string[];
  /** Rules that hold throughout. */
  readonly rules?: readonly string[];
  /** Named values: limits, header names, subjects. */
  readonly values?: Readonly<Record<string, string | number>>;
  /** Rows of a table (every row has the same keys). */
  readonly table?: ReadonlyArray<Readonly<Record<string, string>>>;
  /** Bytes of a worked example, part by part, in hex. */
  readonly example?: { readonly caption: string; readonly parts: ReadonlyArray<readonly [label: string, hex: string]> };
  readonly sections?: Readonly<Record<string, Section>>;
}

export interface LayoutField {
  /** Byte offset from the start, as an expression of earlier lengths. */
  readonly offset: string;
  readonly type: string;
  readonly field: string;
  readonly meaning: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Bytes as spaced lowercase hex. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex").replace(/(..)(?!$)/g, "$1 ");
}

/** The first `n` bytes of a hex string (for long examples). */
function hexHead(bytes: Uint8Array, n: number): string {
  return bytes.byteLength <= n ? hex(bytes) : `${hex(bytes.subarray(0, n))} …`;
}

const statMeta = { path: "a/b" };
const exampleFrame = ((): Buffer => {
  const [head] = encodeFrame(FrameKind.Request, 7, ShardOps.stat.name, encodeJson(statMeta));
  return head;
})();
const exampleBody = encodeBody(encodeJson({ token: "T", path: "a/b" }));
const exampleBinary = encodeBinary(BinaryLayouts[ShardOps.objectLookup.name]!.request, { token: "tok", path: "a/b" });

const overview: Section = {
  title: "Overview",
  text: [
    "Pocket stores a job's ephemeral objects: a job driver registers a job with the controller (job.register) and hands its lambdas a capability token and a NATS credential; lambdas put and get objects under the job's namespace through the job's metadata shard and its storage nodes, and the driver deregisters the job, which frees everything.",
    "Every operation (name, request, reply, error codes, where a payload of raw bytes travels) is declared once; this export gives each one's JSON Schema with a description of every field. Two transports carry the same operations with the same bodies: NATS request/reply (everything is reachable over NATS alone) and a direct TCP transport of length-prefixed frames to a shard's or node's address (faster; object bytes never pass through nats-server).",
    "Integers on the wire are big-endian in frame and body headers and little-endian inside a binary meta; JSON is UTF-8.",
  ],
};

const lambda: Section = {
  title: "What a lambda connects with",
  text: [
    "A lambda is given the NATS server URL, the job's capability token and the job's NATS credential (job.register's `token` and `credentials`; the `pocket` command prints them as POCKET_NATS_URL, POCKET_TOKEN and POCKET_CREDS, the last as the creds text in base64url), and for a cluster that runs TLS the cluster's CA certificate (POCKET_TLS_CA, a file).",
    "The token is `<claims>.<mac>`: `claims` is base64url (no padding) of JSON {\"k\":\"job\",\"j\":jobId,\"s\":shardId,\"e\":expiresAtMs}; a client reads jobId and shardId from it (the MAC is the cluster's to check).",
  ],
  steps: [
    "Connect to NATS with the credential (a creds file: user JWT and nkey seed) and the inbox prefix `_INBOX.job.<jobId>`: the credential may subscribe only under it, so a client on the default `_INBOX` gets no replies.",
    "Send the job's shard operations as NATS requests to `pocket.shard.<shardId>.job.<jobId>.<operation>`, every request with the token.",
    "Send a node's operations (extent.write, extent.read) to `pocket.node.<nodeId>.job.<jobId>.<operation>`, or over the direct transport to the address and key that layouts give.",
    "For the direct transport to the shard, ask shard.info over NATS once: it gives the shard's address and transport key.",
  ],
  values: {
    shardSubject: `${Subjects.shardJob("<shardId>", "<jobId>")}.<operation>`,
    nodeSubject: `${Subjects.nodeJob("<nodeId>", "<jobId>")}.<operation>`,
    inboxPrefix: Inboxes.job("<jobId>"),
    mayPublish: lambdaPermissions("JOB", "SHARD").pub.join(", ").replaceAll("JOB", "<jobId>").replaceAll("SHARD", "<shardId>"),
    maySubscribe: lambdaPermissions("JOB", "SHARD").sub.join(", ").replaceAll("JOB", "<jobId>"),
    driverSubjects: `${Subjects.controllerDriver}.<operation> (job.register, job.renew, job.deregister: a driver's credential)`,
  },
  rules: [
    "nats-server enforces the credential's subjects: a lambda reaches only its own job's operations and receives only its own replies. A responder answers each request once.",
    "A request on a job's subjects with another job's token is Unauthorized.",
    "The lambda credential expires with the job's token.",
  ],
};

const natsBody: Section = {
  title: "Bodies (both transports) and NATS messages",
  text: [
    "Every NATS request and reply carries one body. The direct transport's frames carry the same meta and payload (see directTransport).",
    `The meta is a JSON object (UTF-8), or for the operations listed in \`binaryMeta\` a binary meta (its first byte is ${BinaryMeta.marker}, which JSON never starts with). The payload is raw bytes: on requests of operations whose \`payload\` is "request", on replies of those whose \`payload\` is "reply"; a payload on any other request is InvalidArgument. An empty payload is no payload.`,
    `On NATS, a failed operation's reply carries the headers \`${ErrorHeaders.code}: <code>\` and \`${ErrorHeaders.message}: <text>\` (one line, at most 512 characters); its body's meta is {"error": <code>}. No responder on the subject is NodeUnavailable; no reply in time is Timeout.`,
  ],
  layout: [
    { offset: "0", type: "u32 BE", field: "metaLength", meaning: `bytes of meta, at most ${metaBytesMax} (${metaBytesMax / MiB} MiB)` },
    { offset: "4", type: "metaLength bytes", field: "meta", meaning: "the request or reply: JSON object, or binary meta" },
    { offset: "4 + metaLength", type: "the rest", field: "payload", meaning: "raw bytes, if any" },
  ],
  example: {
    caption: "object.stat's request body, meta {\"token\":\"T\",\"path\":\"a/b\"} (a real token is longer)",
    parts: [["metaLength", hex(exampleBody.subarray(0, 4))], ["meta", hex(exampleBody.subarray(4))]],
  },
};

const chunking: Section = {
  title: "Chunking over NATS",
  text: [
    `nats-server limits a message to its \`max_payload\` (1 MiB by default). With L = the connection's max_payload (the INFO the server sends on connect) − ${chunkHeadroomBytes} bytes of room for headers, a body longer than L travels in chunks; bodies of at most L go as one message, with no chunk headers.`,
    "Each chunk is a request of its own because a responder may answer each request once.",
  ],
  steps: [
    `Request: a body of n > L bytes goes as c = ceil(n / L) requests to the operation's subject, in order, each sent after the previous one's reply. Chunk i (from 0) carries bytes [i·L, min(n, (i+1)·L)) and the header \`${ChunkHeaders.chunk}: <streamId>;<i>;<c>;<n>\`: streamId is 32 lowercase hex digits, random for each request; numbers are decimal.`,
    `The server answers chunks 0 .. c−2 with an empty body and the header \`${ChunkHeaders.chunkAck}: <i>\`, or with error headers (the stream is then dropped). Its answer to the last chunk is the operation's reply.`,
    `Reply: a reply body of m bytes longer than the server's own L comes as its first L bytes with the header \`${ChunkHeaders.replyChunks}: <streamId>;<c>;<m>\` (c = ceil(m / L)).`,
    `The caller fetches chunks 1 .. c−1 in order, each with a request to the same subject, an empty body and the header \`${ChunkHeaders.replyChunk}: <streamId>;<i>\`; each answer is that chunk's bytes (every chunk but the last is L bytes long) or error headers. The reply is the chunks' bytes in order.`,
  ],
  rules: [
    "Streams are keyed by subject and stream id: a job's subjects are its own, so no job reaches another's streams.",
    `Chunk 0 fixes the chunk length: c must equal ceil(n / length of chunk 0), every chunk but the last has that length, the last has the rest. Chunk 0 must have at least min(n, max(${chunkBytesMin}, floor(L / 2))) bytes, L being the server's own (a caller on a nats-server whose max_payload is about half the server's still gets through). Anything else, a chunk out of order, a count or total that differs from chunk 0's, a stream id used twice, or a chunk of a stream that is not open is InvalidArgument, and the stream is dropped.`,
    `Bounds per served subject prefix, for each job on its own subjects (\`<prefix>.<jobId>.<operation>\`) and for all jobs together: ${defaultChunkLimits.jobStreamsMax} partial request streams per job and ${defaultChunkLimits.streamsMax} in all; ${defaultChunkLimits.repliesMax} held replies in all (the server's bound on requests in flight); bytes held — what partial request streams have received so far (not what they declare) and held replies — ${defaultChunkLimits.jobHeldBytesMax / MiB} MiB per job and ${defaultChunkLimits.heldBytesMax / MiB} MiB in all. A body over ${defaultChunkLimits.bodyBytesMax / MiB} MiB is TooLarge.`,
    "A chunk 0 past a stream bound, or a chunk past a byte bound, is Busy and the stream is dropped: the operation has not run, so any request may be sent again. Busy is never the answer to an operation that ran.",
    "A reply the server cannot hold (past the held replies or a byte bound) is Timeout: the operation ran and only its reply is lost; as after any Timeout, repeat only what is safe to repeat. A caller that cannot fetch a held reply's chunks (Busy, no responder) must take it the same way.",
    `A partial stream not continued, or a held reply not fetched, for ${defaultChunkLimits.idleMs / 1000} s is dropped, and either is dropped ${defaultChunkLimits.lifetimeMs / 1000} s after its chunk 0 (or its first reply chunk) however often it is continued; a held reply is dropped once its last chunk is fetched.`,
    "The whole exchange of one call (its chunks and its reply's) runs within that call's timeout.",
    `Subjects, credentials and errors are as for a message of one chunk; a server's max_payload must be at least ${chunkHeadroomBytes + chunkBytesMin} bytes.`,
  ],
  values: {
    headroomBytes: chunkHeadroomBytes,
    requestChunkHeader: ChunkHeaders.chunk,
    ackHeader: ChunkHeaders.chunkAck,
    replyChunksHeader: ChunkHeaders.replyChunks,
    replyChunkHeader: ChunkHeaders.replyChunk,
    chunkBytesMin,
    streamsMax: defaultChunkLimits.streamsMax,
    jobStreamsMax: defaultChunkLimits.jobStreamsMax,
    repliesMax: defaultChunkLimits.repliesMax,
    heldBytesMax: defaultChunkLimits.heldBytesMax,
    jobHeldBytesMax: defaultChunkLimits.jobHeldBytesMax,
    bodyBytesMax: defaultChunkLimits.bodyBytesMax,
    idleMs: defaultChunkLimits.idleMs,
    lifetimeMs: defaultChunkLimits.lifetimeMs,
  },
};

const frame: Section = {
  title: "Frames",
  text: [
    "A TCP (or TLS) connection carries frames both ways; every integer in a frame header is big-endian. A client sends request frames only; the server answers each with a reply or an error frame carrying the request's id. Many requests may be in flight on one connection and replies come in any order.",
  ],
  layout: [
    { offset: "0", type: "u32 BE", field: "length", meaning: "bytes after this field: 10 + n + m + payload length" },
    { offset: "4", type: "u8", field: "kind", meaning: `${FrameKind.Request} request, ${FrameKind.Reply} reply, ${FrameKind.Error} error` },
    { offset: "5", type: "u32 BE", field: "requestId", meaning: "chosen by the client (unique among its requests in flight), echoed by the server" },
    { offset: "9", type: "u8", field: "n", meaning: "operation name length, at most 64 (0 on replies and errors)" },
    { offset: "10", type: "n bytes", field: "name", meaning: "the operation's name, ASCII" },
    { offset: "10 + n", type: "u32 BE", field: "m", meaning: "meta length" },
    { offset: "14 + n", type: "m bytes", field: "meta", meaning: "the request or reply meta (JSON or binary, as in NATS bodies); an error's is JSON {\"code\":C,\"message\":M}" },
    { offset: "14 + n + m", type: "the rest", field: "payload", meaning: "raw bytes, if any (up to length + 4)" },
  ],
  example: {
    caption: `object.stat request, requestId 7, meta ${JSON.stringify(statMeta)} (on an authenticated connection the token may be left out)`,
    parts: [
      ["length", hex(exampleFrame.subarray(0, 4))], ["kind", hex(exampleFrame.subarray(4, 5))], ["requestId", hex(exampleFrame.subarray(5, 9))],
      ["n", hex(exampleFrame.subarray(9, 10))], ["name", hex(exampleFrame.subarray(10, 10 + ShardOps.stat.name.length))],
      ["m", hex(exampleFrame.subarray(10 + ShardOps.stat.name.length, 14 + ShardOps.stat.name.length))],
      ["meta", hex(exampleFrame.subarray(14 + ShardOps.stat.name.length))],
    ],
  },
};

const handshake: Section = {
  title: "Handshake",
  text: [
    "Every connection opens with two rounds, each one frame and its reply, JSON metas and no payload. The server proves who it is first; only then does the client send its token, so a process squatting on a dead server's port never sees one. On a TLS port both rounds run inside TLS, unchanged.",
    "The client must know the server's id (node or shard id) and its Ed25519 public key from an authenticated source: a layout's extent reference (nodeId, addr, key) or shard.info over NATS (shardId, addr, key).",
  ],
  steps: [
    `Client → request, requestId H, name "${TransportHello.name}", meta {"v":1,"nonce":N}: N is base64url without padding of 32 random bytes (43 characters).`,
    "Server → reply, requestId H, meta {\"v\":1,\"id\":I,\"sig\":S}: I is the server's id (1-128 printable ASCII characters, no spaces); S is base64url without padding (86 characters) of the Ed25519 signature of the UTF-8 bytes \"pocket-transport-hello\" 0x0A I 0x0A N (N exactly as sent).",
    "The client checks that I is the id it expected and S verifies with the expected key (raw 32-byte Ed25519 public key, base64url, 43 characters). If not, it closes the connection, having sent nothing but the hello.",
    `Client → request, requestId A, name "${TransportAuth.name}", meta {"token":T}: the job's capability token (1-3072 characters).`,
    "Server → reply, requestId A, meta {}: the connection is open for requests (the client sends none before). A request that leaves out `token` is the session's job's.",
  ],
  rules: [
    `Until the auth reply, the server reads frames of at most ${helloFrameBytesMax} declared bytes (a larger length: TooLarge), and both rounds must complete within 5 s (Timeout); those two errors carry requestId 0.`,
    "A malformed hello or auth (not JSON, a field missing or extra, a payload) gets InvalidArgument with its requestId; any other request before the auth reply (an operation, a second hello, an auth first) gets Unauthorized with requestId 0; a refused token gets Unauthorized with requestId A. The server closes the connection after each of these.",
  ],
  example: {
    caption: "the signed message for id \"dram-0\" and a nonce N",
    parts: [["message", hexHead(helloMessage("dram-0", "N".repeat(43)), 32)]],
  },
};

const directLimits: Section = {
  title: "Limits and errors",
  text: [
    "After the handshake, a frame that breaks the layout (an unknown kind, a length shorter than its header, a name or meta that overruns the frame, a reply or error frame from the client) gets an error frame with requestId 0 and the connection closes. An operation's own failure gets an error frame with its requestId and the connection stays open.",
  ],
  values: {
    preAuthFrameBytesMax: helloFrameBytesMax,
    nodeFrameBytesMax: `extentBytesMax + 64 KiB (${Defaults.frameBytesMax} by default); a longer declared length: TooLarge, connection closed`,
    shardFrameBytesMax: `inlineBytesMax + 64 KiB + ${WireLimits.receiptsPerCallMax} × 256 bytes for a commit's receipts`,
    inflightPerConnection: "64 (more are read once earlier ones are answered)",
    frameTimeoutMs: "30000: a frame, once started, must arrive whole within it",
    helloTimeoutMs: 5000,
  },
};

const directTransport: Section = {
  title: "The direct transport",
  text: [
    "Shards and storage nodes serve the same job operations on a TCP port (`addr`, host:port), with TLS when the cluster runs it (verify the server with the cluster's CA). Cluster-only operations are never served there.",
  ],
  sections: { frame, handshake, limits: directLimits },
};

const binaryMetaSection: Section = {
  title: "Binary meta",
  text: [
    "Optional, for the operations in `binaryMeta.operations` only: a request's meta may be in the operation's binary layout instead of JSON, on either transport. A server answers a binary request with a binary reply when the reply fits its layout, and a JSON request with JSON. A decoded binary meta is checked against the operation's schema exactly as JSON is.",
    "A binary meta: the marker byte, the version, a u16 presence mask, then each present field of the layout in order. Integers inside it are little-endian.",
  ],
  layout: [
    { offset: "0", type: "u8", field: "marker", meaning: `${BinaryMeta.marker} (JSON never starts with it)` },
    { offset: "1", type: "u8", field: "version", meaning: `${BinaryMeta.version}; another is InvalidArgument` },
    { offset: "2", type: "u16 LE", field: "present", meaning: "bit i (value 1 << i) set when field i of the layout is present; bits past the layout's fields must be 0" },
    { offset: "4", type: "fields", field: "fields", meaning: "each present field, in layout order, in its type's encoding" },
  ],
  rules: [
    "str: u16 LE byte length, then that many UTF-8 bytes (at most 65535).",
    "u32: unsigned 32-bit integer, LE (CRC-32s).",
    "u53: IEEE 754 double, LE, holding a whole number 0 ..= 2^53 − 1 (sizes, offsets, versions); anything else is InvalidArgument.",
    "bool: u8, 0 or 1; anything else is InvalidArgument.",
    "refs: u16 LE count, then each extent reference as its own presence mask (u16 LE) and fields, in the `binaryMeta.extentRef` layout.",
    "An absent field is left out of the mask and of the bytes; a request that has a field its layout lacks must travel as JSON. Bytes after the last field are InvalidArgument.",
  ],
  example: {
    caption: "object.lookup request {\"token\":\"tok\",\"path\":\"a/b\"}",
    parts: [
      ["marker, version", hex(exampleBinary.subarray(0, 2))], ["present", hex(exampleBinary.subarray(2, 4))],
      ["token", hex(exampleBinary.subarray(4, 9))], ["path", hex(exampleBinary.subarray(9))],
    ],
  },
};

const writes: Section = {
  title: "Writing an object",
  text: [
    `An object of at most inlineBytesMax bytes (shard.info; ${Defaults.inlineBytesMax} by default) is put in one request: object.put with the bytes as payload and their crc; it is visible once the reply comes.`,
    "A larger object is laid out on storage nodes, written there, and committed:",
  ],
  steps: [
    "object.create {token, path, size} → {writeId, extents}: the write layout, extents of extentBytesMax (the last one shorter), each with nodeId, addr, key, extentId, length and grant. Extent k holds the object's bytes from the sum of the lengths before it, `length` bytes long.",
    "For each extent: extent.write {token, extentId, grant, crc} with the extent's bytes as payload, to its node (over NATS, or the direct transport at addr with key) → {length, crc, receipt}; check both are what was sent. Extents may be written in any order, several at once (the SDK: 8).",
    `object.commit {token, writeId, receipts: [{extentId, crc, receipt}, …]} → {path, version, size}. At most ${WireLimits.receiptsPerCallMax} receipts per call: hand in earlier batches with object.written {token, writeId, receipts}.`,
    "On any failure: object.abort {token, writeId}. The shard also drops a write not committed within its pending-write lifetime and frees its extents; its grants expire with it.",
  ],
  rules: [
    "Nothing of a write is visible before its commit. The commit replaces any earlier version atomically: a reader sees the whole old object or the whole new one, never a mix.",
    "A commit needs a node's receipt for every extent (handed in then or with object.written); without one it is InvalidArgument and the write stays pending, so the writer can write the extent and commit again.",
    "createOnly (on object.create, and on object.commit of a write reserved ahead) is checked at create and again at commit: AlreadyExists.",
    "A node stores an extent only within its grant (this job, node, extent id, exact length) and only if the bytes match the crc; extent ids are never reused, so a reader holding a replaced object's layout gets NotFound, never other bytes.",
    "A streamed put (size unknown): object.create without size, then object.extend {token, writeId, lengths} for further extents in order (each at most extentBytesMax), writes, commit.",
    `Writes ahead: object.create or object.commit with ahead: k (1..${writesAheadMax}) and size reserve k further writes of that size, bound to no path, returned in \`ahead\`. A later put of exactly that size skips object.create: it writes one of them and commits it with its path (and createOnly). If its writes or commit meet NotFound or Unauthorized (it expired), put the usual way.`,
    "A put that timed out may be repeated: puts overwrite.",
  ],
  values: {
    inlineBytesMaxDefault: Defaults.inlineBytesMax,
    extentBytesMaxDefault: Defaults.extentBytesMax,
    pendingWriteTtlMsDefault: Defaults.pendingWriteTtlMs,
    receiptsPerCallMax: WireLimits.receiptsPerCallMax,
  },
};

const ranges: Section = {
  title: "Reading an object, or a range of it",
  text: [
    "object.get {token, path, offset?, length?}: an inline object's bytes come as the payload (the range asked for) with crc, prefixCrc and suffixCrc; any other object's reply has `inline: false`, no payload, and the read layout in `extents` (object.lookup gives the same layout).",
    "Extent k of an object covers its bytes [s_k, s_k + length_k), s_k being the sum of the lengths of the extents before it; their lengths sum to the object's size.",
  ],
  steps: [
    "Clamp the range: from = min(offset ?? 0, size); len = min(size − from, length ?? size); end = from + len. A negative or fractional offset or length is InvalidArgument.",
    "For each extent with s_k + length_k > from and s_k < end, in order: read its piece with extent.read {token, extentId, offset: max(from, s_k) − s_k, length: min(end, s_k + length_k) − max(from, s_k)}; leave offset and length out to read a whole extent.",
    "Check each piece against its extent's committed crc (see checksums), then join the pieces in order: they are the range.",
    "On NotFound or NodeUnavailable from a node, the object was replaced or the node drained since the layout was read: read the layout again and start over (the SDK: 3 times at most). On Integrity, once more with a fresh layout, then report it.",
  ],
  example: {
    caption: "an object of 3.5 MiB in extents of 1 MiB; range offset 1048476, length 1048776",
    parts: [["extent 0", "offset 1048476, length 100"], ["extent 1", "whole (no offset, no length)"], ["extent 2", "offset 0, length 100"]],
  },
};

const paths: Section = {
  title: "Paths",
  text: [
    "A path names an object or a directory in the job's namespace. Every path is relative to the job: no path reaches another job's.",
  ],
  rules: [
    "Leading and trailing \"/\" are ignored: \"/x\", \"x\", \"x/\" and \"//x\" are the same object. \"\" and \"/\" are the job's root directory.",
    "Segments are separated by \"/\". An empty segment (\"a//b\"), \".\" or \"..\" is InvalidArgument, as is a NUL character. Any other character is allowed, case-sensitive and not normalised (compare bytes).",
    `A path is at most ${WireLimits.pathBytesMax} bytes of UTF-8, and each segment at most ${WireLimits.pathSegmentBytesMax}.`,
    "Replies give paths normalised: segments joined by \"/\", no leading or trailing \"/\".",
    "Putting a/b/c creates the directories a and a/b when missing. An object cannot be put at the root, where a directory is, or below an object (InvalidArgument).",
    "dir.list orders names by UTF-16 code units (JavaScript's default sort), a page at a time.",
  ],
  values: { pathBytesMax: WireLimits.pathBytesMax, pathSegmentBytesMax: WireLimits.pathSegmentBytesMax },
};

const checksums: Section = {
  title: "Checksums",
  text: [
    "Every extent and inline object carries a CRC-32 of its bytes: CRC-32/ISO-HDLC as zlib computes it (polynomial 0x04C11DB7, reflected 0xEDB88320; initial value and final xor 0xFFFFFFFF), so Python's zlib.crc32(data) gives the same value. On the wire: an unsigned 32-bit integer (0 ..= 4294967295). The crc of no bytes is 0; the crc of the ASCII bytes \"123456789\" is 0xCBF43926 (3421780262).",
    "crc32Combine(crcA, crcB, lenB) is the CRC-32 of A‖B from the crcs of A and B and B's length (zlib's crc32_combine, by its GF(2) matrix method); with lenB = 0 it is crcA.",
  ],
  rules: [
    "Writers send the crc of what they send: object.put's `crc`, extent.write's `crc`; the shard or node stores nothing whose crc differs (Integrity), and extent.write's reply repeats the crc and length it stored.",
    "Read layouts carry each extent's committed crc; a whole-extent read is checked by crc32(bytes) == crc.",
    "A range of an extent (or of an inline object) comes with prefixCrc and suffixCrc, the crcs of the bytes before and after it; check crc32Combine(crc32Combine(prefixCrc, crc32(range), len(range)), suffixCrc, bytes after the range) == committed crc, taking prefixCrc as 0 when the range starts at 0 and suffixCrc as 0 when it reaches the end.",
    "Bytes that fail the check are never data: read once more with a fresh layout, then fail with Integrity.",
  ],
};

const errors: Section = {
  title: "Errors",
  text: [
    `A failed operation answers with a code from this table and a message for people: in the reply headers ${ErrorHeaders.code} and ${ErrorHeaders.message} on NATS, in an error frame's meta {\"code\",\"message\"} on the direct transport. Unknown codes are to be taken as Internal. Each operation lists the codes it returns; any operation may also meet Timeout, Busy, NodeUnavailable and Internal. Do not match on the message.`,
    "retry: no (trying again gives the same answer), backoff (the same request again after a pause may succeed), reread (during a read: read the layout again; otherwise as backoff for NodeUnavailable, no for the others).",
  ],
  table: Object.values(ErrorCode).map((code) => ({ code, retry: ErrorInfo[code].retry, meaning: ErrorInfo[code].meaning })),
};

/** The contract's sections, in reading order. */
export const protocol: Readonly<Record<string, Section>> = {
  overview, lambda, natsBody, chunking, directTransport, binaryMeta: binaryMetaSection, writes, ranges, paths, checksums, errors,
};
