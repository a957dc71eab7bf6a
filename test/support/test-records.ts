/** A guest test's record as the harness keeps it, for the report and retry tests. */
import type { TestRecord } from '../../harness/report.js';

/** A kselftest result with this verdict; a failed one has no device counters, as when the run broke. */
export function testRecord(name: string, verdict: 'pass' | 'fail' | 'skip', why = 'why'): TestRecord {
  return {
    name,
    suite: 'kselftest',
    ok: verdict !== 'fail',
    skip: verdict === 'skip',
    skipReason: verdict === 'skip' ? 'no remote' : null,
    timeout: null,
    durationMs: 10,
    metrics: {},
    deviceCounters: verdict === 'fail' ? null : { transmitq: { frames: 3 } },
    diagnostics: [why],
  };
}
