/** One sample of the Prometheus text format (version 0.0.4). */
export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A parsed scrape: its samples and the declared type of each metric family. */
export class Scrape {
  constructor(readonly samples: readonly PromSample[], readonly types: ReadonlyMap<string, string>) {}

  /** Samples named `name` whose labels include `labels`. */
  find(name: string, labels: Record<string, string> = {}): PromSample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }

  /** The sum of the matching samples' values (0 when none match: a counter not yet touched). */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.find(name, labels).reduce((n, s) => n + s.value, 0);
  }

  /** The value of the one sample matching; throws when there is not exactly one. */
  one(name: string, labels: Record<string, string> = {}): number {
    const found = this.find(name, labels);
    if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
    return found[0]!.value;
  }
}

/** Parses the Prometheus text format; throws on a line it cannot read (a test should see a malformed exposition). */
export function parsePrometheusText(text: string): Scrape {
  const samples: PromSample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      const m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      else if (!line.startsWith("# HELP ")) throw new Error(`unreadable comment line: ${line}`);
      continue;
    }
    samples.push(parseSample(line));
  }
  return new Scrape(samples, types);
}

function parseSample(line: string): PromSample {
  const nameEnd = line.search(/[{ ]/);
  if (nameEnd <= 0) throw new Error(`unreadable sample line: ${line}`);
  const name = line.slice(0, nameEnd);
  const labels: Record<string, string> = {};
  let i = nameEnd;
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const eq = line.indexOf("=", i);
      if (eq < 0 || line[eq + 1] !== "\"") throw new Error(`unreadable labels: ${line}`);
      const key = line.slice(i, eq).trim();
      let value = "";
      let j = eq + 2;
      for (; j < line.length && line[j] !== "\""; j++) {
        if (line[j] === "\\") {
          j++;
          value += line[j] === "n" ? "\n" : line[j];
        } else {
          value += line[j];
        }
      }
      if (j >= line.length) throw new Error(`unterminated label value: ${line}`);
      labels[key] = value;
      i = j + 1;
      if (line[i] === ",") i++;
    }
    i++;
  }
  const [valueText] = line.slice(i).trim().split(/\s+/);
  const value = valueText === "+Inf" ? Infinity : valueText === "-Inf" ? -Infinity : Number(valueText);
  if (valueText === undefined || (Number.isNaN(value) && valueText !== "NaN" && valueText !== "Nan")) throw new Error(`unreadable value: ${line}`);
  return { name, labels, value };
}

/** GETs `/metrics` of an actor's HTTP server (host:port) and parses it. */
export async function scrape(addr: string): Promise<Scrape> {
  const res = await fetch(`http://${addr}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics of ${addr}: ${res.status}`);
  return parsePrometheusText(await res.text());
}
