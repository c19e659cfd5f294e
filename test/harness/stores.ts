import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PostgresServer } from "./postgres-server";

export { PostgresServer };

/** The two places controller state can live; every store test runs against both. */
export const StoreKinds = ["sqlite", "postgres"] as const;
export type StoreKind = (typeof StoreKinds)[number];

export interface TestStores {
  /** A fresh, empty store location of the kind. */
  location(kind: StoreKind): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Store locations for one test file: SQLite files in a temp dir, and
 * databases on a private PostgreSQL started on first use.
 */
export function testStores(): TestStores {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-store-"));
  let pg: Promise<PostgresServer> | undefined;
  let n = 0;
  return {
    async location(kind) {
      n++;
      if (kind === "sqlite") return path.join(dir, `controller-${n}.sqlite`);
      pg ??= PostgresServer.start();
      return (await pg).createDatabase(`pocket_test_${n}`);
    },
    async stop() {
      if (pg) await (await pg).stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
