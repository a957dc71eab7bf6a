// Parser for testpmd's `show port stats all` output.
//
// The block we read looks like this (DPDK 22.11):
//
//   ######################## NIC statistics for port 0  ########################
//   RX-packets: 53908960   RX-missed: 0          RX-bytes:  3450173440
//   RX-errors: 0
//   RX-nombuf:  0
//   TX-packets: 0          TX-errors: 0          TX-bytes:  0
//
//   Throughput (since last show)
//   Rx-pps:     17910645          Rx-bps:   9170250704
//   Tx-pps:            0          Tx-bps:            0
//   ############################################################################
//
// testpmd interleaves other text with it: the `testpmd> ` prompt (written straight to the fd,
// so it can land in the middle of a line), the echo of the typed command, and asynchronous
// event lines ("Port 0: link state change event") printed from other threads. So the parser
// only trusts `Key: number` pairs found between a "NIC statistics for port N" header and the
// closing row of '#', and ignores everything else. The "Forward statistics" blocks printed by
// `stop` use the same key names with different meanings (RX-dropped, TX-total): they are
// outside NIC blocks and therefore never read.

export interface PortStats {
  port: number;
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
  rxErrors: number;
  rxMissed: number;
  rxNombuf: number;
  txErrors: number;
  /** testpmd's own rate "since last show": only indicative, use counter deltas for rates. */
  rxPps: number;
  txPps: number;
  rxBps: number;
  txBps: number;
}

export const TESTPMD_PROMPT = 'testpmd> ';

const HEADER = /#+\s*NIC statistics for port (\d+)\s*#+/;
const FOOTER = /^\s*#{20,}\s*$/;
const PAIR = /([A-Za-z]+-[A-Za-z]+):\s*(\d+)/g;

/** testpmd key -> our field. Keys not listed here (per-queue stats, ...) are ignored. */
const KEYS: Readonly<Record<string, keyof Omit<PortStats, 'port'>>> = {
  'RX-packets': 'rxPackets',
  'TX-packets': 'txPackets',
  'RX-bytes': 'rxBytes',
  'TX-bytes': 'txBytes',
  'RX-errors': 'rxErrors',
  'RX-missed': 'rxMissed',
  'RX-nombuf': 'rxNombuf',
  'TX-errors': 'txErrors',
  'Rx-pps': 'rxPps',
  'Tx-pps': 'txPps',
  'Rx-bps': 'rxBps',
  'Tx-bps': 'txBps',
};

/** The counters every block must have; a block missing one was cut off and is an error. */
const REQUIRED: readonly (keyof PortStats)[] = [
  'rxPackets',
  'txPackets',
  'rxBytes',
  'txBytes',
  'rxErrors',
  'rxMissed',
  'txErrors',
];

export class StatsParseError extends Error {
  override name = 'StatsParseError';
}

/** Removes every prompt, wherever it landed (start of line or mid-line). */
export function stripPrompts(text: string): string {
  return text.split(TESTPMD_PROMPT).join('');
}

function emptyStats(port: number): PortStats {
  return {
    port,
    rxPackets: 0,
    txPackets: 0,
    rxBytes: 0,
    txBytes: 0,
    rxErrors: 0,
    rxMissed: 0,
    rxNombuf: 0,
    txErrors: 0,
    rxPps: 0,
    txPps: 0,
    rxBps: 0,
    txBps: 0,
  };
}

/**
 * Parses every "NIC statistics for port N" block in `text`, sorted by port. If a port appears
 * twice (two `show` outputs in one capture) the last block wins, because it is the newest.
 * Throws StatsParseError when a block is truncated; returns [] when there is no block at all.
 */
export function parsePortStats(text: string): PortStats[] {
  const lines = stripPrompts(text).split(/\r?\n/);
  const byPort = new Map<number, PortStats>();
  let current: PortStats | undefined;
  let seen = new Set<string>();

  const finish = (): void => {
    if (current === undefined) return;
    const missing = REQUIRED.filter((k) => !seen.has(k));
    if (missing.length > 0) {
      throw new StatsParseError(
        `NIC statistics block for port ${current.port} lacks ${missing.join(', ')}`,
      );
    }
    byPort.set(current.port, current);
    current = undefined;
  };

  for (const line of lines) {
    const header = HEADER.exec(line);
    if (header) {
      // A header before the previous footer means the previous block was cut short.
      finish();
      current = emptyStats(Number(header[1]));
      seen = new Set();
      continue;
    }
    if (current === undefined) continue;
    if (FOOTER.test(line)) {
      finish();
      continue;
    }
    for (const m of line.matchAll(PAIR)) {
      const field = KEYS[m[1] as string];
      if (field === undefined) continue;
      const value = Number(m[2]);
      if (!Number.isSafeInteger(value)) {
        throw new StatsParseError(`${m[1]} value ${m[2]} is not a safe integer`);
      }
      current[field] = value;
      seen.add(field);
    }
  }
  if (current !== undefined) {
    throw new StatsParseError(`NIC statistics block for port ${current.port} has no closing line`);
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}
