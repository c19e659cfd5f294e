import fs from "node:fs";
import path from "node:path";
import { errorFields, logger } from "../../lib/log";
import {
  Kysely, Migrator, PostgresDialect, SqliteDialect, sql,
  type ExpressionBuilder, type Migration, type MigrationProvider, type OnConflictDatabase, type OnConflictTables,
} from "kysely";
import type { JobHints, Tier, Weight } from "../../schemas/operations";
import type { AllocationPart, Demand } from "./allocation";
import type { ControllerCore, CoreMeta, CoreState, Dirty, JobBook, JobUsage, NodeBook } from "./core";
import { restoreJobLife, restoreNodeLife, type JobLifeContext, type JobState, type NodeLifeContext, type NodeState } from "./machines";

const log = logger("store");

interface MetaTable { key: string; value: string }
interface NodesTable {
  node_id: string; tier: string; state: string; addr: string;
  capacity_bytes: number; throughput_bps: number; launched: number;
  used_bytes: number; extents: number; life: string; migrate_requested: number; updated_at_ms: number;
}
interface JobsTable {
  job_id: string; name: string; shard_id: string; tier: string; hints: string; demand: string;
  state: string; life: string; registered_at_ms: number; ended_at_ms: number | null; weights: string;
}
interface AllocationsTable { job_id: string; node_id: string; seq: number; bytes: number; bps: number }
interface UsageTable {
  job_id: string; tier: string; bytes: number; byte_seconds: number; reserved_bps_seconds: number; reserved_byte_seconds: number;
  requests: number; requests_seen: number; request_rate: number; last_report_ms: number;
}
interface Schema {
  controller_meta: MetaTable;
  nodes: NodesTable;
  jobs: JobsTable;
  allocations: AllocationsTable;
  usage: UsageTable;
}

/** Numbers as double precision: millisecond times and byte counts fit exactly, and SQLite and PostgreSQL agree. */
const num = "double precision";

const migrations: Record<string, Migration> = {
  "2026_11_26_001_controller_state": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.createTable("controller_meta").ifNotExists()
        .addColumn("key", "varchar(64)", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull()).execute();
      await db.schema.createTable("nodes").ifNotExists()
        .addColumn("node_id", "varchar(64)", (c) => c.primaryKey())
        .addColumn("tier", "varchar(16)", (c) => c.notNull())
        .addColumn("state", "varchar(16)", (c) => c.notNull())
        .addColumn("addr", "varchar(256)", (c) => c.notNull())
        .addColumn("capacity_bytes", num, (c) => c.notNull())
        .addColumn("throughput_bps", num, (c) => c.notNull())
        .addColumn("launched", "integer", (c) => c.notNull())
        .addColumn("used_bytes", num, (c) => c.notNull())
        .addColumn("extents", num, (c) => c.notNull())
        .addColumn("life", "text", (c) => c.notNull())
        .addColumn("migrate_requested", "integer", (c) => c.notNull())
        .addColumn("updated_at_ms", num, (c) => c.notNull()).execute();
      await db.schema.createTable("jobs").ifNotExists()
        .addColumn("job_id", "varchar(64)", (c) => c.primaryKey())
        .addColumn("name", "varchar(128)", (c) => c.notNull())
        .addColumn("shard_id", "varchar(64)", (c) => c.notNull())
        .addColumn("tier", "varchar(16)", (c) => c.notNull())
        .addColumn("hints", "text", (c) => c.notNull())
        .addColumn("demand", "text", (c) => c.notNull())
        .addColumn("state", "varchar(16)", (c) => c.notNull())
        .addColumn("life", "text", (c) => c.notNull())
        .addColumn("registered_at_ms", num, (c) => c.notNull())
        .addColumn("ended_at_ms", num)
        .addColumn("weights", "text", (c) => c.notNull()).execute();
      await db.schema.createIndex("jobs_state").ifNotExists().on("jobs").columns(["state", "ended_at_ms"]).execute();
      await db.schema.createTable("allocations").ifNotExists()
        .addColumn("job_id", "varchar(64)", (c) => c.notNull())
        .addColumn("node_id", "varchar(64)", (c) => c.notNull())
        .addColumn("seq", "integer", (c) => c.notNull())
        .addColumn("bytes", num, (c) => c.notNull())
        .addColumn("bps", num, (c) => c.notNull())
        .addPrimaryKeyConstraint("allocations_pk", ["job_id", "seq"]).execute();
      await db.schema.createTable("usage").ifNotExists()
        .addColumn("job_id", "varchar(64)", (c) => c.primaryKey())
        .addColumn("tier", "varchar(16)", (c) => c.notNull())
        .addColumn("bytes", num, (c) => c.notNull())
        .addColumn("byte_seconds", num, (c) => c.notNull())
        .addColumn("reserved_bps_seconds", num, (c) => c.notNull())
        .addColumn("reserved_byte_seconds", num, (c) => c.notNull())
        .addColumn("requests", num, (c) => c.notNull())
        .addColumn("requests_seen", num, (c) => c.notNull())
        .addColumn("request_rate", num, (c) => c.notNull())
        .addColumn("last_report_ms", num, (c) => c.notNull()).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const t of ["usage", "allocations", "jobs", "nodes", "controller_meta"]) await db.schema.dropTable(t).ifExists().execute();
    },
  },
};

const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };

/** Where the controller keeps its state: a SQLite file path, or a `postgres://` URL. */
export type StoreLocation = string;

/**
 * The controller's durable state in SQL (kysely): nodes and their states,
 * jobs with hints, demand, lifecycle, weight maps, allocations, and the
 * usage ledger. Written through after every change that matters; read back
 * whole when a controller starts.
 */
export class ControllerStore {
  private constructor(readonly db: Kysely<Schema>, readonly location: string) {}

  static async open(location: StoreLocation): Promise<ControllerStore> {
    let db: Kysely<Schema>;
    if (/^postgres(ql)?:\/\//.test(location)) {
      const { Pool } = await import("pg");
      const pool = new Pool({ connectionString: location, max: 4 });
      // An idle connection that breaks (the server restarts, the network drops) is reported here and
      // discarded by the pool; the next query opens a new one or fails with its own error. Unheard,
      // the event would end the process.
      pool.on("error", (e) => log.warn("store connection lost", errorFields(e)));
      db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
    } else {
      const { default: Database } = await import("better-sqlite3");
      fs.mkdirSync(path.dirname(path.resolve(location)), { recursive: true });
      const sqlite = new Database(location);
      sqlite.pragma("journal_mode = WAL");
      sqlite.pragma("synchronous = NORMAL");
      db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
    }
    const store = new ControllerStore(db, location.replace(/\/\/[^@/]*@/, "//***@"));
    const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
    const failed = results?.find((r) => r.status === "Error");
    if (error || failed) {
      await db.destroy();
      throw new Error(`controller store migration ${failed?.migrationName ?? ""} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    return store;
  }

  /** Everything a restarted controller needs, or undefined for a new store. */
  async load(): Promise<CoreState | undefined> {
    const metaRow = await this.db.selectFrom("controller_meta").selectAll().where("key", "=", "core").executeTakeFirst();
    if (!metaRow) return undefined;
    const meta = JSON.parse(metaRow.value) as CoreMeta;
    const nodeRows = await this.db.selectFrom("nodes").selectAll().where("state", "!=", "removed").execute();
    const nodes: NodeBook[] = nodeRows.map((r) => ({
      nodeId: r.node_id, tier: r.tier as Tier, addr: r.addr, capacityBytes: Number(r.capacity_bytes), throughputBps: Number(r.throughput_bps),
      launched: Number(r.launched) === 1, life: restoreNodeLife(r.state as NodeState, JSON.parse(r.life) as NodeLifeContext),
      usedBytes: Number(r.used_bytes), extents: Number(r.extents), samples: [], migrateRequested: Number(r.migrate_requested) === 1,
    }));
    const jobRows = await this.db.selectFrom("jobs").selectAll().where("state", "in", ["registered", "active"]).execute();
    const jobs: JobBook[] = [];
    for (const r of jobRows) jobs.push(await this.#jobFrom(r));
    return { meta, nodes, jobs };
  }

  /** One job, live or ended (for `pocket usage` on jobs no longer in memory). */
  async job(jobId: string): Promise<JobBook | undefined> {
    const r = await this.db.selectFrom("jobs").selectAll().where("job_id", "=", jobId).executeTakeFirst();
    return r ? this.#jobFrom(r) : undefined;
  }

  async #jobFrom(r: JobsTable): Promise<JobBook> {
    const parts = await this.db.selectFrom("allocations").selectAll().where("job_id", "=", r.job_id).orderBy("seq").execute();
    const u = await this.db.selectFrom("usage").selectAll().where("job_id", "=", r.job_id).executeTakeFirst();
    const usage: JobUsage = u
      ? {
        bytes: Number(u.bytes), byteSeconds: Number(u.byte_seconds), reservedBpsSeconds: Number(u.reserved_bps_seconds),
        reservedByteSeconds: Number(u.reserved_byte_seconds), requests: Number(u.requests), requestsSeen: Number(u.requests_seen),
        requestRate: Number(u.request_rate), lastReportMs: Number(u.last_report_ms),
      }
      : { bytes: 0, byteSeconds: 0, reservedBpsSeconds: 0, reservedByteSeconds: 0, requests: 0, requestsSeen: 0, requestRate: 0, lastReportMs: 0 };
    return {
      jobId: r.job_id, name: r.name, shardId: r.shard_id, tier: r.tier as Tier,
      hints: JSON.parse(r.hints) as JobHints, demand: JSON.parse(r.demand) as Demand,
      registeredAtMs: Number(r.registered_at_ms), endedAtMs: r.ended_at_ms === null ? null : Number(r.ended_at_ms),
      life: restoreJobLife(r.state as JobState, JSON.parse(r.life) as JobLifeContext),
      parts: parts.map((p): AllocationPart => ({ nodeId: p.node_id, bytes: Number(p.bytes), bps: Number(p.bps) })),
      weights: JSON.parse(r.weights) as Weight[],
      usage,
    };
  }

  /** Writes what changed, in one transaction. */
  async save(core: ControllerCore, dirty: Dirty, nowMs: number): Promise<void> {
    if (!dirty.meta && dirty.nodes.size === 0 && dirty.jobs.size === 0) return;
    const nodes = [...dirty.nodes].sort().map((id) => core.node(id)).filter((n): n is NodeBook => n !== undefined).map((n): NodesTable => ({
      node_id: n.nodeId, tier: n.tier, state: core.nodeState(n), addr: n.addr, capacity_bytes: n.capacityBytes,
      throughput_bps: n.throughputBps, launched: n.launched ? 1 : 0, used_bytes: n.usedBytes, extents: n.extents,
      life: JSON.stringify(n.life.context), migrate_requested: n.migrateRequested ? 1 : 0, updated_at_ms: nowMs,
    }));
    const jobs = [...dirty.jobs].sort().map((id) => core.job(id)).filter((j): j is JobBook => j !== undefined);
    await this.db.transaction().execute(async (tx) => {
      if (dirty.meta) {
        const value = JSON.stringify(core.meta);
        await tx.insertInto("controller_meta").values({ key: "core", value })
          .onConflict((oc) => oc.column("key").doUpdateSet({ value })).execute();
      }
      // One statement per table and chunk, not one per row: a tick dirties every node and every live job.
      for (const rows of chunks(nodes)) {
        await tx.insertInto("nodes").values(rows).onConflict((oc) => oc.column("node_id").doUpdateSet(excludedOf<"nodes">(rows[0]!, "node_id"))).execute();
      }
      for (const batch of chunks(jobs)) {
        const ids = batch.map((j) => j.jobId);
        const rows = batch.map((j): JobsTable => ({
          job_id: j.jobId, name: j.name, shard_id: j.shardId, tier: j.tier, hints: JSON.stringify(j.hints), demand: JSON.stringify(j.demand),
          state: core.jobState(j), life: JSON.stringify(j.life.context), registered_at_ms: j.registeredAtMs, ended_at_ms: j.endedAtMs,
          weights: JSON.stringify(j.weights),
        }));
        await tx.insertInto("jobs").values(rows).onConflict((oc) => oc.column("job_id").doUpdateSet(excludedOf<"jobs">(rows[0]!, "job_id"))).execute();
        await tx.deleteFrom("allocations").where("job_id", "in", ids).execute();
        const parts = batch.flatMap((j) => j.parts.map((p, seq) => ({ job_id: j.jobId, node_id: p.nodeId, seq, bytes: p.bytes, bps: p.bps })));
        for (const c of chunks(parts)) await tx.insertInto("allocations").values(c).execute();
        const usage = batch.map((j): UsageTable => {
          const u = j.usage;
          return {
            job_id: j.jobId, tier: j.tier, bytes: u.bytes, byte_seconds: u.byteSeconds, reserved_bps_seconds: u.reservedBpsSeconds,
            reserved_byte_seconds: u.reservedByteSeconds, requests: u.requests, requests_seen: u.requestsSeen, request_rate: u.requestRate,
            last_report_ms: u.lastReportMs,
          };
        });
        await tx.insertInto("usage").values(usage).onConflict((oc) => oc.column("job_id").doUpdateSet(excludedOf<"usage">(usage[0]!, "job_id"))).execute();
      }
    });
  }

  /** Deletes ended jobs (and their ledger) that ended before `beforeMs`, and removed nodes; returns jobs deleted. */
  async prune(beforeMs: number): Promise<number> {
    return this.db.transaction().execute(async (tx) => {
      const old = tx.selectFrom("jobs").select("job_id").where("state", "in", ["ended", "expired"]).where("ended_at_ms", "<", beforeMs);
      await tx.deleteFrom("allocations").where("job_id", "in", old).execute();
      await tx.deleteFrom("usage").where("job_id", "in", old).execute();
      const r = await tx.deleteFrom("jobs").where("state", "in", ["ended", "expired"]).where("ended_at_ms", "<", beforeMs).executeTakeFirst();
      await tx.deleteFrom("nodes").where("state", "=", "removed").where("updated_at_ms", "<", beforeMs).execute();
      return Number(r.numDeletedRows);
    });
  }

  /** A cheap query that fails when the database is unreachable. */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/** Prepared statements kept per SQLite connection: the same few queries run on every save. */
const statementCacheMax = 256;

/**
 * The SQLite connection as kysely sees it, with `prepare` remembered by SQL
 * text (kysely prepares every query it runs; preparing was the largest cost
 * of a save). Bounded: past statementCacheMax texts the oldest is dropped.
 */
function withStatementCache<D extends { prepare(sql: string): unknown }>(db: D): D {
  const cache = new Map<string, unknown>();
  const prepare = db.prepare.bind(db);
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== "prepare") {
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      }
      return (text: string) => {
        let st = cache.get(text);
        if (st === undefined) {
          if (cache.size >= statementCacheMax) cache.delete(cache.keys().next().value!);
          st = prepare(text);
          cache.set(text, st);
        }
        return st;
      };
    },
  });
}

/** Rows per statement: well under SQLite's 32,766 bound parameters and PostgreSQL's 65,535 at 12 columns a row. */
const rowsPerStatementMax = 500;

function chunks<T>(rows: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += rowsPerStatementMax) out.push(rows.slice(i, i + rowsPerStatementMax));
  return out;
}

/** `SET col = excluded.col` for every column of `row` but the key (SQLite and PostgreSQL both spell it so). */
function excludedOf<T extends keyof Schema>(row: object, key: string): never {
  const columns = Object.keys(row).filter((c) => c !== key);
  const set = (eb: ExpressionBuilder<OnConflictDatabase<Schema, T>, OnConflictTables<T>>): Record<string, unknown> =>
    Object.fromEntries(columns.map((c) => [c, eb.ref(`excluded.${c}` as never)]));
  // Column names come from the row's own keys, which the table's type fixes; kysely cannot follow that through Object.keys.
  return set as never;
}
