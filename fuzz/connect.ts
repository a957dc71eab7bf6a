/**
 * Connecting to the backend again and again. The backend serves one frontend at a time and
 * notices our last disconnect asynchronously, so a connection made right after one closed may
 * be turned away (closed before any reply): that is retried, not counted against the backend.
 */
import { isSysError, type FeatureWord } from 'vfio-user-ts';
import { FrontendSession, VhostUserClient, VhostUserError, type FrontendSessionOptions } from 'vfio-user-ts/vhost-user-frontend';

const ATTEMPTS = 60;

function retriable(error: unknown): boolean {
  if (error instanceof VhostUserError && error.code === 'ERR_VHOST_USER_CLOSED') return true;
  return isSysError(error, 'ECONNREFUSED') || isSysError(error, 'ENOENT') || isSysError(error, 'EAGAIN');
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** FrontendSession.open, retried while the backend is still busy with our previous connection. */
export async function openSession(options: FrontendSessionOptions): Promise<FrontendSession> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await FrontendSession.open(options);
    } catch (error) {
      if (attempt >= ATTEMPTS || !retriable(error)) throw error;
      await pause(Math.min(20, attempt));
    }
  }
}

/**
 * A connected client that the backend has answered once (GET_FEATURES), so it is the frontend
 * being served. Resolves with the client and the features offered.
 */
export async function connectClient(socketPath: string, replyTimeoutMs: number): Promise<{ client: VhostUserClient; offered: FeatureWord }> {
  for (let attempt = 1; ; attempt++) {
    let client: VhostUserClient | null = null;
    try {
      client = await VhostUserClient.connect(socketPath, { replyTimeoutMs });
      const offered = await client.getFeatures();
      return { client, offered };
    } catch (error) {
      client?.close();
      if (attempt >= ATTEMPTS || !retriable(error)) throw error;
      await pause(Math.min(20, attempt));
    }
  }
}
