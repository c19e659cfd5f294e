import fs from "node:fs";
import { readPrivateFile } from "../lib/private-file";

/** A server's TLS certificate and private key files (PEM; the key 0600), as `ClusterTls` makes them. */
export interface ServerTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** Reads a server's certificate and key files, refusing a key others can read. */
export function readServerTls(files: ServerTlsFiles): { cert: string; key: string } {
  return { cert: fs.readFileSync(files.certFile, "utf8"), key: readPrivateFile(files.keyFile) };
}

/**
 * Codes Node gives a server certificate that does not verify: OpenSSL's
 * certificate verification results, and Node's own host name check.
 */
const certificateCodes = new Set([
  "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE", "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY", "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID", "CERT_HAS_EXPIRED", "ERROR_IN_CERT_NOT_BEFORE_FIELD", "ERROR_IN_CERT_NOT_AFTER_FIELD",
  "DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "CERT_CHAIN_TOO_LONG", "CERT_REVOKED", "INVALID_CA",
  "PATH_LENGTH_EXCEEDED", "INVALID_PURPOSE", "CERT_UNTRUSTED", "CERT_REJECTED", "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Where a client is told to find the cluster's CA. */
export const tlsCaHint = "give the client the cluster's CA (tlsCa, POCKET_TLS_CA or --tls-ca)";

/**
 * Why a TLS connection failed, as a sentence, or undefined when `e` is no
 * TLS failure (a refused or reset connection, a timeout).
 *
 * @example
 *   socket.on("error", (e) => { const why = tlsFailure(e); ... });
 */
export function tlsFailure(e: unknown): string | undefined {
  // Not `instanceof Error`: errors from Node's own modules may come from another realm (a test runner's sandbox).
  if (typeof e !== "object" || e === null) return undefined;
  const code = "code" in e && typeof e.code === "string" ? e.code : "";
  const message = "message" in e && typeof e.message === "string" ? e.message.trim() : "";
  if (certificateCodes.has(code)) return `TLS: the server's certificate does not verify (${code}: ${message}); ${tlsCaHint}`;
  if (code.startsWith("ERR_SSL_")) return `TLS handshake failed, the port may not serve TLS (${code}: ${message})`;
  return undefined;
}

/** True for the first bytes of a TLS record (handshake or alert, TLS 1.0-1.3): a peer that speaks TLS where frames were expected. */
export function looksLikeTls(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && (bytes[0] === 0x15 || bytes[0] === 0x16) && bytes[1] === 0x03;
}
