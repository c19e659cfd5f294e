import fs from "node:fs";
import { UnauthorizedError } from "../schemas/errors";

/** Reads a file that holds a secret (a creds file, a private key), refusing one that others can read. */
export function readPrivateFile(file: string): string {
  const st = fs.statSync(file);
  if ((st.mode & 0o077) !== 0) throw new UnauthorizedError(`${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  return fs.readFileSync(file, "utf8");
}
