/**
 * The `jupyter.lineage` comm client (docs/protocol.md): numbers requests,
 * matches replies by id, reassembles parted replies, and hands events on as
 * signals. It knows nothing of JupyterLab; connection.ts adapts a kernel's
 * comm to its transport.
 */
import { ISignal, Signal } from '@lumino/signaling';
import {
  IHello,
  IRecordedEvent,
  LineageError,
  PROTOCOL_VERSION
} from './tokens';

/**
 * What the client needs from a comm. The kernel adapter (connection.ts)
 * wraps JupyterLab's `IComm`; the unit tests use a small in-memory one.
 */
export interface ILineageTransport {
  /** Send one `comm_msg` with this data. */
  send(data: Record<string, unknown>): void;
  /** Close the comm (sends `comm_close`). */
  close(): void;
}

/** A reply or event sent in parts (docs/protocol.md, "Large replies"). */
interface IPartial {
  parts: number;
  received: number;
  texts: string[];
}

/**
 * The `jupyter.lineage` comm client: numbers requests, matches replies by
 * id, reassembles parted replies, and hands events on as signals.
 */
export class LineageClient {
  constructor(
    readonly transport: ILineageTransport,
    options: LineageClient.IOptions = {}
  ) {
    this._timeoutMs = options.timeoutMs ?? 30000;
  }

  /** Emitted for every `hello` event (comm open, or a later hello). */
  get hello(): ISignal<this, IHello> {
    return this._hello;
  }

  /** Emitted for every `recorded` event. */
  get recorded(): ISignal<this, IRecordedEvent> {
    return this._recorded;
  }

  /** Emitted once when the comm is closed or the client disposed. */
  get closed(): ISignal<this, void> {
    return this._closed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Requests still waiting for their reply. */
  get pendingCount(): number {
    return this._pending.size;
  }

  /**
   * Send a request and resolve with its `result`; reject with a
   * `LineageError` on `ok: false`, a timeout or a closed comm.
   */
  request<T>(name: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this._isDisposed) {
      return Promise.reject(new LineageError('closed', 'comm closed'));
    }
    const id = this._nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer =
        this._timeoutMs > 0
          ? setTimeout(() => {
              this._pending.delete(id);
              reject(
                new LineageError('timeout', `no reply to ${name} in time`)
              );
            }, this._timeoutMs)
          : null;
      this._pending.set(id, {
        name,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer
      });
      try {
        this.transport.send({
          ...params,
          request: name,
          id,
          protocol_version: PROTOCOL_VERSION
        });
      } catch (err) {
        this._settle(id);
        reject(err);
      }
    });
  }

  /** Feed one comm message's `data` (the kernel adapter calls this). */
  handleMessage(data: unknown): void {
    if (this._isDisposed || !data || typeof data !== 'object') {
      return;
    }
    const msg = data as Record<string, unknown>;
    if (typeof msg.part === 'number' && typeof msg.parts === 'number') {
      this._handlePart(msg);
      return;
    }
    this._dispatch(msg);
  }

  /** The comm was closed by the other side. */
  handleClose(): void {
    this.dispose();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const id of Array.from(this._pending.keys())) {
      const p = this._settle(id);
      p?.reject(new LineageError('closed', 'comm closed'));
    }
    this._partials.clear();
    this._closed.emit();
    Signal.clearData(this);
  }

  private _handlePart(msg: Record<string, unknown>): void {
    const key = `${msg.reply ?? ''}|${msg.event ?? ''}|${JSON.stringify(
      msg.id ?? null
    )}`;
    const parts = msg.parts as number;
    const index = msg.part as number;
    let partial = this._partials.get(key);
    if (!partial || partial.parts !== parts) {
      partial = { parts, received: 0, texts: new Array(parts) };
      this._partials.set(key, partial);
    }
    if (index < 0 || index >= parts || partial.texts[index] !== undefined) {
      return;
    }
    partial.texts[index] = String(msg.text ?? '');
    partial.received++;
    if (partial.received < parts) {
      return;
    }
    this._partials.delete(key);
    let whole: unknown;
    try {
      whole = JSON.parse(partial.texts.join(''));
    } catch (err) {
      const p = typeof msg.id === 'number' ? this._settle(msg.id) : undefined;
      p?.reject(new LineageError('internal', `bad parted reply: ${err}`));
      return;
    }
    if (whole && typeof whole === 'object') {
      this._dispatch(whole as Record<string, unknown>);
    }
  }

  private _dispatch(msg: Record<string, unknown>): void {
    if (typeof msg.reply === 'string') {
      const p = typeof msg.id === 'number' ? this._settle(msg.id) : undefined;
      if (!p) {
        return; // a reply nobody waits for (timed out): drop it
      }
      if (msg.ok === false) {
        const e = (msg.error ?? {}) as { code?: string; message?: string };
        p.reject(
          new LineageError(e.code ?? 'internal', e.message ?? 'request failed')
        );
      } else {
        p.resolve(msg.result);
      }
      return;
    }
    switch (msg.event) {
      case 'hello':
        this._hello.emit(msg as unknown as IHello);
        break;
      case 'recorded':
        this._recorded.emit(msg as unknown as IRecordedEvent);
        break;
      default:
        break; // unknown events are for newer clients
    }
  }

  private _settle(id: number): LineageClient.IPending | undefined {
    const p = this._pending.get(id);
    if (p) {
      this._pending.delete(id);
      if (p.timer !== null) {
        clearTimeout(p.timer);
      }
    }
    return p;
  }

  private _nextId = 1;
  private _timeoutMs: number;
  private _isDisposed = false;
  private _pending = new Map<number, LineageClient.IPending>();
  private _partials = new Map<string, IPartial>();
  private _hello = new Signal<this, IHello>(this);
  private _recorded = new Signal<this, IRecordedEvent>(this);
  private _closed = new Signal<this, void>(this);
}

export namespace LineageClient {
  export interface IOptions {
    /** Reject a request with no reply after this long; 0 waits forever. */
    timeoutMs?: number;
  }
  export interface IPending {
    name: string;
    resolve: (value: unknown) => void;
    reject: (reason: unknown) => void;
    timer: ReturnType<typeof setTimeout> | null;
  }
}
