/** The port each queue pair exchanges frames with, as the control plane chose it (PortOptions). */
import { GenPort } from '../ports/gen.js';
import { DEFAULT_TAP, type Port, type PortOptions } from '../ports/port.js';
import { ReflectPort } from '../ports/reflect.js';
import { SinkPort } from '../ports/sink.js';
import { TapPort } from '../ports/tap.js';
import { WirePort, type WireGroup } from '../ports/wire.js';
import { QueuePair } from '../queue-pair.js';

/**
 * `wake` schedules the pair: a tap or a wire calls it when its fd has frames for the receiveq;
 * `wires`: this worker's wire ports of the device (one group per Datapath).
 */
export function createPort(options: PortOptions, pair: QueuePair, counters: Float64Array, wake: (pair: QueuePair) => void, wires: WireGroup): Port {
  switch (options.port) {
    case 'sink':
      return new SinkPort();
    case 'reflect':
      return new ReflectPort(pair, counters);
    case 'gen':
      return new GenPort(pair, options.gen, options.mac, pair.index);
    case 'tap':
      return new TapPort(pair, counters, options.tap ?? DEFAULT_TAP, () => wake(pair));
    case 'wire':
      return new WirePort(pair, wires, counters, options.wireFds?.[pair.index], (reader) => wake(reader instanceof QueuePair ? reader : pair));
  }
}
