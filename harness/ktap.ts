// Incremental KTAP reader for what the guest prints on its KTAP port.
//
// tap-parser does the TAP grammar (test points, directives, plans, nested blocks, bail out);
// this module adds what zcnic's guest prints around it (see guest/init and
// guest/suites/lib/common.sh):
//   # zcnic-suite name=S          the suite the following tests belong to
//   # zcnic-begin name=T          a test starts (so a live display can show it running)
//   # zcnic-metric key=value      a measurement, attached to the next result
//   # zcnic key=value ...         the run's header (kernel, iface, suites, timeout)
//   # zcnic-done pass= fail= ...  the guest finished every suite
//   not ok N name # TIMEOUT after Ss
//
// Three things tap-parser does not do the KTAP way, and how they are handled here:
//  - it does not know "KTAP version 1": at the top it would be non-TAP noise, and an indented
//    one would not open a nested block, so the line is handed over as "TAP version 14";
//  - it holds every result back until the next non-comment line, in case YAML diagnostics
//    follow; KTAP has none, and waiting would delay a result until the NEXT test ended, so each
//    result is flushed as soon as its line arrives;
//  - TIMEOUT is no TAP directive: tap-parser leaves "# TIMEOUT after 60s" in the name, so it is
//    split off here.

import { Parser, type Result } from 'tap-parser';

export type MetricValue = number | string;
export type Metrics = Record<string, MetricValue>;

export interface KtapResult {
  /** The test number on the result line (its position in its block when the line has none). */
  index: number;
  name: string;
  /** From the latest "# zcnic-suite name=" line; null before any. */
  suite: string | null;
  /** As printed: a skipped test is "ok", a timed-out one "not ok". */
  ok: boolean;
  /** null: not skipped; otherwise the reason ('' when the line gave none). */
  skip: string | null;
  /** null: no TODO directive; otherwise its text ('' when none). */
  todo: string | null;
  /** Seconds from "# TIMEOUT after Ns"; 0 when TIMEOUT gave no duration; null: no timeout. */
  timeout: number | null;
  /** Any other text after " # " on the result line (e.g. "no such suite"); null when none. */
  directive: string | null;
  /** The '#' lines (without "# ") since the previous result at this nesting level. */
  diagnostics: string[];
  /** The "# zcnic-metric k=v" lines since the previous result at this nesting level. */
  metrics: Metrics;
  /** Metric test.<name>.ms when the guest printed it. */
  durationMs: number | null;
  /** 0 for the guest's own results, 1 for a nested block's, ... */
  depth: number;
  /** Results of the nested KTAP block printed just before this result line. */
  subtests: KtapResult[];
}

export interface KtapBegin {
  name: string;
  suite: string | null;
  /** The number the result will most likely carry (results so far + 1). */
  index: number;
}

export interface KtapSummary {
  /** From the first "KTAP version N" line; null when none was seen. */
  version: number | null;
  /** Tests in the top-level plan; 0 when no plan was seen (see errors). */
  planned: number;
  passed: number;
  failed: number;
  skipped: number;
  /** Planned but never reported (the guest died, hung, or lost its port). */
  missing: number;
  /** Metric boot.ms (guest uptime when the first suite started). */
  bootMs: number | null;
  /** Saw "# zcnic-done": the guest ran every suite to the end. */
  done: boolean;
  /** The guest's own counts from "# zcnic-done", to cross-check. */
  doneCounts: Record<string, number> | null;
  /** A test announced by "# zcnic-begin" that never reported: what the guest was doing when it stopped. */
  running: string | null;
  /** Reason given by "Bail out!", null when none. */
  bailout: string | null;
  /** The "# zcnic key=value ..." header (kernel, iface, suites, timeout). */
  header: Record<string, string>;
  /** Metrics printed outside any test (boot.ms, suite-level ones). */
  metrics: Metrics;
  /** '#' lines printed outside any test, including those of a test that never reported. */
  diagnostics: string[];
  /** Problems with the stream itself (no plan, duplicate ids, more results than planned, ...). */
  errors: string[];
  /** Every top-level result, in order. */
  results: KtapResult[];
}

export interface KtapReaderOptions {
  /** A top-level test finished (nested ones arrive in its `subtests`). */
  onResult?: (result: KtapResult) => void;
  /** The guest announced a test start ("# zcnic-begin name=..."). */
  onBegin?: (begin: KtapBegin) => void;
}

interface Pending {
  diagnostics: string[];
  metrics: Metrics;
  /** Finished results of this level, waiting for their parent result line. */
  done: KtapResult[];
}

const KTAP_VERSION = /^KTAP version (\d+)$/;
const TEST_POINT = /^(not )?ok\b/;
const ZCNIC_LINE = /^#\s*zcnic(-[a-z]+)?(?:\s+(.*))?$/;
const TIMEOUT = /^TIMEOUT\b(?:\s+after\s+(\d+(?:\.\d+)?)\s*s?)?/i;
const NUMBER = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** "a=1 b=two" -> {a: '1', b: 'two'}; words without '=' are ignored. */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const word of text.trim().split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq > 0) out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}

/** A metric value as a number when it reads as one, else the string. */
export function metricValue(text: string): MetricValue {
  const t = text.trim();
  return NUMBER.test(t) ? Number(t) : t;
}

function emptyPending(): Pending {
  return { diagnostics: [], metrics: {}, done: [] };
}

export class KtapReader {
  private readonly parser: Parser;
  /** tap-parser's parser per nesting level, to flush results as they arrive. */
  private readonly parsers: Parser[] = [];
  private readonly pending: Pending[] = [emptyPending()];
  private readonly results: KtapResult[] = [];
  private readonly errors: string[] = [];
  private readonly header: Record<string, string> = {};
  private readonly globalMetrics: Metrics = {};
  private readonly globalDiagnostics: string[] = [];
  private partial = '';
  private suite: string | null = null;
  private running: string | null = null;
  private version: number | null = null;
  private planned: number | null = null;
  private done = false;
  private doneCounts: Record<string, number> | null = null;
  private bailout: string | null = null;
  private ended: KtapSummary | null = null;

  constructor(private readonly opts: KtapReaderOptions = {}) {
    this.parser = new Parser();
    this.watch(this.parser, 0);
    this.parser.on('plan', (p: { start: number; end: number }) => {
      this.planned = Math.max(0, p.end - p.start + 1);
    });
    this.parser.on('bailout', (reason: string) => {
      this.bailout = reason;
    });
  }

  /** Feed raw text as it arrives; partial lines wait for their end. */
  write(chunk: string): void {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) this.line(l);
  }

  /** Feed one line (without its newline). */
  line(raw: string): void {
    if (this.ended) throw new Error('KtapReader: line() after end()');
    const line = raw.replace(/\r+$/, '').replace(/\r/g, '');
    const indent = /^ */.exec(line)?.[0].length ?? 0;
    const depth = Math.floor(indent / 4);
    const content = line.slice(indent);

    const version = KTAP_VERSION.exec(content);
    if (version) {
      if (depth === 0 && this.version === null) this.version = Number(version[1]);
      this.feed(`${' '.repeat(indent)}TAP version 14`);
      return;
    }
    if (content.startsWith('#')) {
      this.comment(content, depth);
      this.feed(line);
      return;
    }
    this.feed(line);
    if (TEST_POINT.test(content)) {
      // Flush now (see the header): the result is complete, KTAP has no YAML blocks.
      this.parsers[depth]?.emitResult();
    }
  }

  /** The stream is over (the guest powered off or the connection closed). */
  end(): KtapSummary {
    if (this.ended) return this.ended;
    if (this.partial !== '') {
      const last = this.partial;
      this.partial = '';
      this.line(last);
    }
    this.parser.end();
    // Lines after the last result: the run's epilogue, or the output of a test that never
    // reported (the guest died): either way they belong to the run now.
    this.toGlobal(0);
    for (let d = 1; d < this.pending.length; d++) {
      const orphans = this.pending[d]?.done.length ?? 0;
      if (orphans > 0) this.errors.push(`${orphans} nested result(s) at level ${d} never got their parent result line`);
    }
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const r of this.results) {
      if (r.skip !== null) skipped++;
      else if (!r.ok && r.todo === null) failed++;
      else passed++;
    }
    const planned = this.planned ?? 0;
    if (this.planned === null) this.errors.push('no plan line (1..N)');
    if (this.results.length > planned && this.planned !== null) {
      this.errors.push(`${this.results.length} results for a plan of ${planned}`);
    }
    const bootMs = this.globalMetrics['boot.ms'];
    this.ended = {
      version: this.version,
      planned,
      passed,
      failed,
      skipped,
      missing: Math.max(0, planned - this.results.length),
      bootMs: typeof bootMs === 'number' ? bootMs : null,
      done: this.done,
      doneCounts: this.doneCounts,
      running: this.running,
      bailout: this.bailout,
      header: { ...this.header },
      metrics: { ...this.globalMetrics },
      diagnostics: [...this.globalDiagnostics],
      errors: [...this.errors],
      results: [...this.results],
    };
    return this.ended;
  }

  private feed(line: string): void {
    this.parser.write(`${line}\n`);
  }

  private level(depth: number): Pending {
    while (this.pending.length <= depth) this.pending.push(emptyPending());
    return this.pending[depth]!;
  }

  /** Moves what was collected outside any test (before a suite starts, after done) to the run. */
  private toGlobal(depth: number): void {
    const p = this.level(depth);
    Object.assign(this.globalMetrics, p.metrics);
    this.globalDiagnostics.push(...p.diagnostics);
    p.metrics = {};
    p.diagnostics = [];
  }

  private comment(content: string, depth: number): void {
    const z = ZCNIC_LINE.exec(content);
    if (!z) {
      const text = content.replace(/^#\s?/, '');
      // "# Subtest: name" is structure (tap-parser names the nested block from it), not a diagnostic.
      if (!/^Subtest(?::|$)/.test(text)) this.level(depth).diagnostics.push(text);
      return;
    }
    const kind = z[1] ?? '';
    const rest = z[2] ?? '';
    switch (kind) {
      case '-metric': {
        const eq = rest.indexOf('=');
        if (eq <= 0) {
          this.errors.push(`malformed metric line: ${content}`);
          return;
        }
        this.level(depth).metrics[rest.slice(0, eq).trim()] = metricValue(rest.slice(eq + 1));
        return;
      }
      case '-suite':
        if (depth === 0) this.toGlobal(0);
        this.suite = parseKeyValues(rest)['name'] ?? (rest.trim() || null);
        return;
      case '-begin': {
        const name = parseKeyValues(rest)['name'] ?? rest.trim();
        if (depth === 0) this.running = name;
        if (depth === 0) this.opts.onBegin?.({ name, suite: this.suite, index: this.results.length + 1 });
        return;
      }
      case '-done': {
        this.done = true;
        const counts: Record<string, number> = {};
        for (const [k, v] of Object.entries(parseKeyValues(rest))) {
          const n = metricValue(v);
          if (typeof n === 'number') counts[k] = n;
        }
        this.doneCounts = counts;
        this.toGlobal(0);
        return;
      }
      case '':
        Object.assign(this.header, parseKeyValues(rest));
        return;
      default:
        // An unknown zcnic-* line is kept as a diagnostic rather than lost.
        this.level(depth).diagnostics.push(content.replace(/^#\s?/, ''));
    }
  }

  /** Listen to one tap-parser parser (and, through 'child', to its nested blocks). */
  private watch(p: Parser, depth: number): void {
    this.parsers[depth] = p;
    p.on('child', (child: Parser) => this.watch(child, depth + 1));
    p.on('assert', (res: Result) => this.onAssert(res, depth));
  }

  private onAssert(res: Result, depth: number): void {
    const own = this.level(depth);
    const nested = this.level(depth + 1);
    // Deeper levels belong to this result too: a block can only close through its parent.
    for (let d = depth + 2; d < this.pending.length; d++) this.pending[d] = emptyPending();

    let name = res.name;
    let timeout: number | null = null;
    let directive: string | null = null;
    const hash = /\s#\s*/.exec(name);
    if (hash) {
      const text = name.slice(hash.index + hash[0].length).trim();
      name = name.slice(0, hash.index).trim();
      const t = TIMEOUT.exec(text);
      if (t) timeout = t[1] === undefined ? 0 : Number(t[1]);
      else directive = text;
    }
    const metrics = own.metrics;
    const ms = metrics[`test.${name}.ms`];
    if (res.tapError) this.errors.push(`${res.tapError}: ${res.ok ? 'ok' : 'not ok'} ${res.id} ${name}`);

    const result: KtapResult = {
      index: res.id || (depth === 0 ? this.results.length : own.done.length) + 1,
      name,
      suite: this.suite,
      ok: res.ok,
      skip: res.skip === false ? null : res.skip === true ? '' : res.skip,
      todo: res.todo === false ? null : res.todo === true ? '' : res.todo,
      timeout,
      directive,
      diagnostics: own.diagnostics,
      metrics,
      durationMs: typeof ms === 'number' ? ms : null,
      depth,
      subtests: nested.done,
    };
    this.pending[depth + 1] = emptyPending();
    own.diagnostics = [];
    own.metrics = {};
    if (depth > 0) {
      own.done.push(result);
      return;
    }
    this.results.push(result);
    if (this.running === name) this.running = null;
    this.opts.onResult?.(result);
  }
}

/** Reads a whole KTAP text at once (a saved log, a fixture). */
export function parseKtap(text: string): KtapSummary {
  const r = new KtapReader();
  r.write(text);
  return r.end();
}
