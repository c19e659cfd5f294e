import fs from "node:fs";
import path from "node:path";

/** A file that holds a secret but others may read (or enter its directory). */
export class PrivateFileError extends Error {
  override readonly name = "PrivateFileError";
}

/** Reads a file that holds a secret (a creds file, a seed, a private key), refusing one that others can read. */
export function readPrivateFile(file: string): string {
  const st = fs.statSync(file);
  if ((st.mode & 0o077) !== 0) throw new PrivateFileError(`${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  return fs.readFileSync(file, "utf8");
}

/**
 * Writes a file only its owner can read (0600), in a directory only its owner
 * can enter (0700), replacing it atomically: credentials and keys.
 */
export function writePrivateFile(file: string, contents: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, contents, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}
