/** Worker-thread entry of a Datapath: messages in from the control plane, replies out. */
import { parentPort, workerData } from 'node:worker_threads';
import { Datapath } from './datapath.js';
import type { DatapathWorkerData, ToDatapath } from './messages.js';

const port = parentPort;
if (!port) throw new Error('datapath/worker.js runs as a worker thread');
const datapath = new Datapath(workerData as DatapathWorkerData, (message) => port.postMessage(message));
port.on('message', (message: ToDatapath) => {
  datapath.handle(message);
  if (message.type === 'shutdown') port.close();
});
port.postMessage({ type: 'ready' });
