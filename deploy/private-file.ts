import fs from "node:fs";
import path from "node:path";

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
