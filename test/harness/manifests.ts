import fs from "node:fs";
import path from "node:path";
import { isMap, isScalar, isSeq, parseAllDocuments, parse as parseYaml, visit, type Document } from "yaml";
import { projectRoot } from "../../lib/process";

/**
 * The Kubernetes manifests in deploy/kubernetes as `kubectl apply -k` would
 * send them, without kubectl: the kustomization's resources (YAML 1.1, as
 * kubectl's parser reads it), its generated ConfigMaps (under their own names:
 * kustomize adds a hash and rewrites every reference to match), and its
 * namespace set on every namespaced object.
 */

export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; namespace?: string; readonly labels?: Record<string, string>; readonly annotations?: Record<string, string> };
  readonly [field: string]: unknown;
}

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: {
    readonly secretKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
    readonly configMapKeyRef?: { readonly name: string; readonly key: string };
    readonly fieldRef?: { readonly fieldPath: string };
  };
}
export interface Probe { readonly httpGet?: { readonly path: string; readonly port: string | number }; readonly exec?: { readonly command: string[] } }
export interface Container {
  readonly name: string;
  readonly image: string;
  readonly args?: string[];
  readonly command?: string[];
  readonly ports?: Array<{ readonly name?: string; readonly containerPort: number }>;
  readonly env?: EnvVar[];
  readonly volumeMounts?: Array<{ readonly name: string; readonly mountPath: string }>;
  readonly startupProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly readinessProbe?: Probe;
  readonly resources?: { readonly requests?: Record<string, string>; readonly limits?: Record<string, string> };
  readonly securityContext?: Record<string, unknown>;
}
export interface KeyToPath { readonly key: string; readonly path: string }
export interface Volume {
  readonly name: string;
  readonly secret?: { readonly secretName: string; readonly items?: KeyToPath[]; readonly optional?: boolean };
  readonly configMap?: { readonly name: string; readonly items?: KeyToPath[] };
  readonly projected?: { readonly sources: Array<{ readonly secret?: { readonly name: string; readonly items?: KeyToPath[]; readonly optional?: boolean } }> };
  readonly emptyDir?: { readonly medium?: string };
  readonly persistentVolumeClaim?: { readonly claimName: string };
  readonly ephemeral?: unknown;
}
export interface PodSpec {
  readonly containers: Container[];
  readonly volumes?: Volume[];
  readonly serviceAccountName?: string;
  readonly enableServiceLinks?: boolean;
  readonly securityContext?: { readonly runAsNonRoot?: boolean; readonly runAsUser?: number; readonly fsGroup?: number };
}
/** A pod as something runs it: a workload's template, or a pod of its own. */
export interface PodOf {
  readonly owner: Manifest;
  readonly labels: Record<string, string>;
  readonly spec: PodSpec;
  /** Claims of the workload's volumeClaimTemplates, by name. */
  readonly claimTemplates: readonly string[];
}

export const manifestsDir = path.join(projectRoot(), "deploy", "kubernetes");

interface Kustomization {
  readonly namespace?: string;
  readonly resources: string[];
  readonly configMapGenerator?: Array<{ readonly name: string; readonly files: string[] }>;
}

export function readKustomization(dir = manifestsDir): Kustomization {
  return parseYaml(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"), { version: "1.1" }) as Kustomization;
}

/** Parses a YAML stream as kubectl does (YAML 1.1); a syntax error, or a plain scalar go-yaml refuses, throws. */
export function parseManifests(text: string, file: string): Manifest[] {
  const docs = parseAllDocuments(text, { version: "1.1" });
  const out: Manifest[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
    checkFlowScalars(doc, file);
    const value = doc.toJS() as Manifest | null;
    if (value !== null) out.push(value);
  }
  return out;
}

/**
 * kubectl's YAML parser (go-yaml) refuses some plain scalars inside `{ }` and
 * `[ ]` that YAML 1.2 takes (`{ path: /healthz?x=1 }`): in flow collections,
 * only plain scalars of letters, digits and `_ . / : -` are let through here;
 * anything else must be quoted.
 */
function checkFlowScalars(doc: Document, file: string): void {
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (node.type !== "PLAIN") return;
      const inFlow = ancestors.some((a) => (isMap(a) || isSeq(a)) && a.flow === true);
      const text = node.source ?? String(node.value);
      if (inFlow && isScalar(node) && !/^[A-Za-z0-9_./:-]*$/.test(text)) {
        throw new Error(`${file}: quote ${JSON.stringify(text)}: kubectl's YAML parser refuses it unquoted inside { } or [ ]`);
      }
    },
  });
}

/** Every object `kubectl apply -k dir` creates; `without` leaves resources out (as an operator may). */
export function renderKustomization(dir = manifestsDir, without: readonly string[] = []): Manifest[] {
  const k = readKustomization(dir);
  const out: Manifest[] = [];
  for (const file of k.resources.filter((r) => !without.includes(r))) out.push(...parseManifests(fs.readFileSync(path.join(dir, file), "utf8"), file));
  for (const g of k.configMapGenerator ?? []) {
    const data: Record<string, string> = {};
    for (const f of g.files) data[path.basename(f)] = fs.readFileSync(path.join(dir, f), "utf8");
    out.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data });
  }
  if (k.namespace !== undefined) for (const m of out) if (m.kind !== "Namespace") m.metadata.namespace = k.namespace;
  return out;
}

/** The pods of workloads (their templates) and bare pods among `manifests`. */
export function podsOf(manifests: readonly Manifest[]): PodOf[] {
  const out: PodOf[] = [];
  for (const m of manifests) {
    if (m.kind === "Pod") {
      out.push({ owner: m, labels: m.metadata.labels ?? {}, spec: m["spec"] as PodSpec, claimTemplates: [] });
      continue;
    }
    const spec = m["spec"] as { template?: { metadata?: { labels?: Record<string, string> }; spec: PodSpec }; volumeClaimTemplates?: Array<{ metadata: { name: string } }> } | undefined;
    if (!spec?.template) continue;
    out.push({ owner: m, labels: spec.template.metadata?.labels ?? {}, spec: spec.template.spec, claimTemplates: (spec.volumeClaimTemplates ?? []).map((c) => c.metadata.name) });
  }
  return out;
}

export function byKind(manifests: readonly Manifest[], kind: string): Manifest[] {
  return manifests.filter((m) => m.kind === kind);
}

export function named(manifests: readonly Manifest[], kind: string, name: string): Manifest {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
  if (!m) throw new Error(`no ${kind} ${name}`);
  return m;
}

/** Whether `labels` carry every label of `selector`. */
export function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

/** The keys a Secret or ConfigMap manifest holds. */
export function keysOf(m: Manifest): string[] {
  return Object.keys({ ...(m["data"] as object | undefined), ...(m["stringData"] as object | undefined) });
}

/** A Secret's values, decoded. */
export function secretValues(m: Manifest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((m["data"] ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, "base64").toString("utf8");
  for (const [k, v] of Object.entries((m["stringData"] ?? {}) as Record<string, string>)) out[k] = v;
  return out;
}

/**
 * An env value as Kubernetes expands it: `$(NAME)` becomes the value of a
 * variable defined earlier in the same container (`values` gives what the
 * valueFrom ones resolve to); a reference to anything else stays as written,
 * which `unresolved` reports.
 */
export function expandEnv(value: string, earlier: readonly string[], values: Readonly<Record<string, string>>, unresolved: string[] = []): string {
  return value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => {
    if (!earlier.includes(name) || values[name] === undefined) {
      unresolved.push(name);
      return whole;
    }
    return values[name]!;
  });
}
