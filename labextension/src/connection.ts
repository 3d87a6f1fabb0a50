/**
 * Connects a notebook's session to its history model: opens the
 * `jupyter.lineage` comm on the session's kernel, reopens it after a kernel
 * change or restart, and tells the model when the kernel is not a lineage
 * kernel (with the lineage kernelspec to switch to, when one is installed).
 */
import type { ISessionContext } from '@jupyterlab/apputils';
import type { Kernel, KernelSpec } from '@jupyterlab/services';
import { CommsOverSubshells } from '@jupyterlab/services';
import { PromiseDelegate } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';
import { LineageClient } from './client';
import { errorText } from './format';
import { HistoryModel } from './model';
import {
  COMM_TARGET,
  IHello,
  ISwitchOffer,
  KERNELSPEC_METADATA_KEY,
  KERNELSPEC_NAME_SUFFIX
} from './tokens';

/** How long to wait for the hello after `comm_open`. */
const HELLO_TIMEOUT_MS = 10000;
/**
 * How long to wait for it from a kernel whose kernelspec is not a lineage
 * one: started through `lineage-provisioner` it is proxied all the same;
 * otherwise ipykernel closes the unknown comm at once, and a kernel that
 * ignores it costs this long before the panel offers to record it.
 */
const PROBE_TIMEOUT_MS = 3000;

/** Whether a kernelspec is a lineage kernelspec. */
export function isLineageSpec(
  spec: KernelSpec.ISpecModel | undefined
): boolean {
  const meta = spec?.metadata as Record<string, unknown> | undefined;
  return !!meta && !!meta[KERNELSPEC_METADATA_KEY];
}

/**
 * The installed lineage kernelspec that wraps `name`, if any: one whose
 * metadata says it wraps `name`, else one named `<name>-lineage`.
 */
export function findLineageSpecFor(
  name: string,
  specs: KernelSpec.ISpecModels | null | undefined
): ISwitchOffer | null {
  if (!specs) {
    return null;
  }
  const all = Object.values(specs.kernelspecs ?? {}).filter(
    (s): s is KernelSpec.ISpecModel => !!s
  );
  const wraps = (s: KernelSpec.ISpecModel) =>
    (
      (s.metadata as Record<string, any> | undefined)?.[
        KERNELSPEC_METADATA_KEY
      ] as { wraps?: string } | undefined
    )?.wraps;
  const found =
    all.find(s => isLineageSpec(s) && wraps(s) === name) ??
    all.find(s => s.name === `${name}${KERNELSPEC_NAME_SUFFIX}`);
  return found
    ? { name: found.name, displayName: found.display_name || found.name }
    : null;
}

/** Open the lineage comm on a kernel and wait for its hello. */
export async function openLineageClient(
  kernel: Kernel.IKernelConnection,
  timeoutMs: number = HELLO_TIMEOUT_MS
): Promise<{ client: LineageClient; hello: IHello }> {
  const comm = kernel.createComm(COMM_TARGET);
  // The proxy answers this comm itself: no need for the real kernel to
  // start a subshell for it (JupyterLab 4.4+ would, per comm target).
  comm.commsOverSubshells = CommsOverSubshells.Disabled;
  const client = new LineageClient({
    send: data => {
      if (!comm.isDisposed) {
        comm.send(data as any);
      }
    },
    close: () => {
      if (!comm.isDisposed && !kernel.isDisposed) {
        comm.close();
      }
    }
  });
  const hello = new PromiseDelegate<IHello>();
  client.hello.connect((_, h) => hello.resolve(h));
  client.closed.connect(() =>
    hello.reject(new Error('the kernel closed the lineage comm'))
  );
  comm.onMsg = msg => client.handleMessage(msg.content.data);
  comm.onClose = () => client.handleClose();
  const timer = setTimeout(
    () => hello.reject(new Error('the kernel did not answer the lineage comm')),
    timeoutMs
  );
  try {
    comm.open({ protocol_version: 1, client: 'jupyterlab' });
    const h = await hello.promise;
    return { client, hello: h };
  } catch (err) {
    client.dispose();
    if (!comm.isDisposed) {
      comm.dispose();
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Keeps one session's model connected. Disposed with the notebook.
 */
export class SessionConnector implements IDisposable {
  constructor(
    readonly sessionContext: ISessionContext,
    readonly model: HistoryModel,
    private readonly _specs: KernelSpec.IManager | null
  ) {
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    sessionContext.statusChanged.connect(this._onStatus, this);
    void sessionContext.ready.then(() => this.connect());
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** (Re)connect to the session's current kernel. */
  async connect(): Promise<void> {
    if (this._isDisposed) {
      return;
    }
    const generation = ++this._generation;
    this._closeClient();
    const kernel = this.sessionContext.session?.kernel ?? null;
    if (!kernel) {
      this.model.setState('no-kernel', 'The notebook has no kernel.');
      return;
    }
    this.model.setState('connecting');
    let spec: KernelSpec.ISpecModel | undefined;
    try {
      spec = await kernel.spec;
    } catch {
      spec = undefined;
    }
    if (generation !== this._generation || this._isDisposed) {
      return;
    }
    let probed: { client: LineageClient; hello: IHello } | null = null;
    if (!isLineageSpec(spec)) {
      // Recorded anyway when lineage-provisioner started it: ask the kernel.
      probed = await openLineageClient(kernel, PROBE_TIMEOUT_MS).catch(
        () => null
      );
      if (generation !== this._generation || this._isDisposed) {
        probed?.client.transport.close();
        probed?.client.dispose();
        return;
      }
    }
    if (!isLineageSpec(spec) && !probed) {
      const name = spec?.name ?? kernel.name;
      this.model.setState(
        'not-lineage',
        `The kernel "${spec?.display_name ?? name}" does not record runs: ` +
          'it is not a lineage kernel.',
        this.switchOffer(name)
      );
      return;
    }
    try {
      const { client, hello } = probed ?? (await openLineageClient(kernel));
      if (generation !== this._generation || this._isDisposed) {
        client.transport.close();
        client.dispose();
        return;
      }
      this._client = client;
      this._kernel = kernel;
      await this.model.attach(client, hello);
    } catch (err) {
      if (generation === this._generation && !this._isDisposed) {
        this.model.setState('error', errorText(err));
      }
    }
  }

  /** The lineage kernelspec to offer for a kernelspec name. */
  switchOffer(name: string): ISwitchOffer | null {
    return findLineageSpecFor(name, this._specs?.specs);
  }

  /** Switch the notebook to the offered lineage kernelspec. */
  async switchKernel(): Promise<void> {
    const offer = this.model.switchOffer;
    if (offer) {
      await this.sessionContext.changeKernel({ name: offer.name });
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._generation++;
    this.sessionContext.kernelChanged.disconnect(this._onKernelChanged, this);
    this.sessionContext.statusChanged.disconnect(this._onStatus, this);
    this._closeClient();
  }

  private _onKernelChanged(): void {
    void this.connect();
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      // A restart is a fresh proxy: the old comm is gone.
      this._restarting = true;
      this._generation++;
      this._closeClient(false);
      this.model.setState('connecting', 'The kernel is restarting…');
    } else if (status === 'dead') {
      this._closeClient(false);
      this.model.setState('error', 'The kernel is dead.');
    } else if (this._restarting && status === 'idle') {
      this._restarting = false;
      void this.connect();
    }
  }

  private _closeClient(sendClose = true): void {
    const client = this._client;
    this._client = null;
    if (client) {
      if (sendClose && this._kernel && !this._kernel.isDisposed) {
        try {
          client.transport.close();
        } catch {
          // the kernel went away already
        }
      }
      client.dispose();
    }
    this._kernel = null;
  }

  private _isDisposed = false;
  private _generation = 0;
  private _restarting = false;
  private _client: LineageClient | null = null;
  private _kernel: Kernel.IKernelConnection | null = null;
}
