/**
 * The control plane's handle on one datapath worker thread: request/reply over postMessage
 * (replies come back in request order), queue errors passed to a callback.
 */
import { Worker } from 'node:worker_threads';
import type { DatapathWorkerData, FromDatapath, ToDatapath } from './messages.js';

type QueueErrorMessage = Extract<FromDatapath, { type: 'queueError' }>;

export class DatapathWorker {
  private readonly worker: Worker;
  private readonly pending: Array<(message: FromDatapath) => void> = [];
  private readonly ready: Promise<void>;
  private exited = false;
  private stopping = false;
  private readonly exitedPromise: Promise<void>;

  constructor(data: DatapathWorkerData, onQueueError: (message: QueueErrorMessage) => void, onExit: (reason: string) => void) {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: data });
    let markReady: () => void = () => {};
    this.ready = new Promise((resolve) => (markReady = resolve));
    this.worker.on('message', (message: FromDatapath) => {
      if (message.type === 'ready') markReady();
      else if (message.type === 'queueError') onQueueError(message);
      else this.pending.shift()?.(message);
    });
    this.worker.on('error', (error) => onExit(`datapath worker failed: ${error.stack ?? error.message}`));
    this.exitedPromise = new Promise((resolve) =>
      this.worker.on('exit', (code) => {
        this.exited = true;
        if (code !== 0 && !this.stopping) onExit(`datapath worker exited with code ${code}`);
        resolve();
      }),
    );
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  request<T extends FromDatapath['type']>(message: ToDatapath, reply: T): Promise<Extract<FromDatapath, { type: T }>> {
    if (this.exited) return Promise.reject(new Error('the datapath worker is gone'));
    return new Promise((resolve, reject) => {
      this.pending.push((answer) =>
        answer.type === reply ? resolve(answer as Extract<FromDatapath, { type: T }>) : reject(new Error(`datapath answered ${answer.type} to ${message.type}`)),
      );
      this.worker.postMessage(message);
    });
  }

  /** Asks the worker to flush and unmap, waits for it to end by itself, forces it after 2 s. */
  async shutdown(): Promise<void> {
    if (this.exited) return;
    this.stopping = true;
    await this.request({ type: 'shutdown' }, 'shutDown');
    const forced = setTimeout(() => void this.worker.terminate(), 2000);
    await this.exitedPromise;
    clearTimeout(forced);
  }
}
