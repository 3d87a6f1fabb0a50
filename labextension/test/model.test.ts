/**
 * Unit tests of the comm client and the history model, over an in-memory
 * transport that answers like docs/protocol.md. (The real kernel is
 * exercised by the UI tests.)
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ILineageTransport, LineageClient } from '../src/client';
import {
  filterToQuery,
  foldIntoSummary,
  HistoryModel,
  matchesFilter
} from '../src/model';
import { IHello, IHistoryItem, LineageError } from '../src/tokens';

const HELLO: IHello = {
  event: 'hello',
  protocol_version: 1,
  lineage_version: '0.1.0',
  notebook_path: '/p/a.ipynb',
  recording: true
};

function item(id: number, extra: Partial<IHistoryItem> = {}): IHistoryItem {
  return {
    id,
    cell_id: 'c1',
    notebook_path: '/p/a.ipynb',
    execution_count: id,
    code_preview: `x = ${id}`,
    status: 'ok',
    started_ms: 1795000000000 + id,
    ended_ms: 1795000000010 + id,
    wall_ms: 10,
    cpu_ms: 5,
    peak_rss: 1000 * id,
    gpu_mem_peak: null,
    silent: false,
    ...extra
  };
}

/** A transport whose requests are answered by `serve` (async, like a comm). */
class FakeTransport implements ILineageTransport {
  constructor(
    private serve: (req: Record<string, any>) => Record<string, any> | null
  ) {}
  client!: LineageClient;
  sent: Record<string, any>[] = [];
  closed = false;
  send(data: Record<string, unknown>): void {
    this.sent.push(data);
    const reply = this.serve(data as Record<string, any>);
    if (reply) {
      setImmediate(() => this.client.handleMessage(reply));
    }
  }
  close(): void {
    this.closed = true;
  }
}

function connect(
  serve: (req: Record<string, any>) => Record<string, any> | null,
  options: LineageClient.IOptions = {}
): { client: LineageClient; transport: FakeTransport } {
  const transport = new FakeTransport(serve);
  const client = new LineageClient(transport, options);
  transport.client = client;
  return { client, transport };
}

const ok = (req: Record<string, any>, result: unknown) => ({
  reply: req.request,
  id: req.id,
  protocol_version: 1,
  ok: true,
  result
});

test('requests get increasing ids and resolve with their result', async () => {
  const { client, transport } = connect(req => ok(req, { echo: req.request }));
  const [a, b] = await Promise.all([
    client.request<{ echo: string }>('health'),
    client.request<{ echo: string }>('sessions', { limit: 1 })
  ]);
  assert.equal(a.echo, 'health');
  assert.equal(b.echo, 'sessions');
  assert.deepEqual(
    transport.sent.map(s => s.id),
    [1, 2]
  );
  assert.equal(transport.sent[1].limit, 1);
  assert.equal(transport.sent[1].protocol_version, 1);
  assert.equal(client.pendingCount, 0);
});

test('replies out of order reach the right request', async () => {
  const queue: Record<string, any>[] = [];
  const { client } = connect(req => {
    queue.push(req);
    return null;
  });
  const p1 = client.request<number>('a');
  const p2 = client.request<number>('b');
  client.handleMessage(ok(queue[1], 2));
  client.handleMessage(ok(queue[0], 1));
  assert.deepEqual(await Promise.all([p1, p2]), [1, 2]);
});

test('an error reply rejects with its code and message', async () => {
  const { client } = connect(req => ({
    reply: req.request,
    id: req.id,
    ok: false,
    error: { code: 'not_found', message: 'no such execution' }
  }));
  await assert.rejects(
    client.request('execution', { execution_id: 9 }),
    (e: unknown) => {
      assert.ok(e instanceof LineageError);
      assert.equal((e as LineageError).code, 'not_found');
      return true;
    }
  );
});

test('a reply in parts is reassembled, in any order', async () => {
  const queue: Record<string, any>[] = [];
  const { client } = connect(req => {
    queue.push(req);
    return null;
  });
  const big = {
    code: 'x'.repeat(1000),
    outputs: [{ output: { output_type: 'stream', text: 'é ✓' } }]
  };
  const p = client.request<typeof big>('execution', { execution_id: 1 });
  const text = JSON.stringify(ok(queue[0], big));
  const n = 5;
  const size = Math.ceil(text.length / n);
  const parts = Array.from({ length: n }, (_, i) => ({
    reply: 'execution',
    event: null,
    id: queue[0].id,
    protocol_version: 1,
    part: i,
    parts: n,
    text: text.slice(i * size, (i + 1) * size)
  }));
  for (const i of [3, 0, 4, 1, 2]) {
    client.handleMessage(parts[i]);
  }
  client.handleMessage(parts[2]); // a duplicate is ignored
  assert.deepEqual(await p, big);
});

test('events: hello and recorded are signalled; unknown ones ignored', () => {
  const { client } = connect(() => null);
  const seen: string[] = [];
  client.hello.connect((_, h) => seen.push(`hello ${h.notebook_path}`));
  client.recorded.connect((_, r) => seen.push(`recorded ${r.execution?.id}`));
  client.handleMessage(HELLO);
  client.handleMessage({ event: 'future-thing' });
  client.handleMessage({
    event: 'recorded',
    protocol_version: 1,
    execution: item(4)
  });
  assert.deepEqual(seen, ['hello /p/a.ipynb', 'recorded 4']);
});

test('a request times out, and a late reply is dropped', async () => {
  const queue: Record<string, any>[] = [];
  const { client } = connect(
    req => {
      queue.push(req);
      return null;
    },
    { timeoutMs: 20 }
  );
  await assert.rejects(client.request('history'), /no reply/);
  client.handleMessage(ok(queue[0], {})); // no throw
  assert.equal(client.pendingCount, 0);
});

test('closing the comm rejects pending requests', async () => {
  const { client } = connect(() => null);
  const p = client.request('history');
  let closed = 0;
  client.closed.connect(() => closed++);
  client.handleClose();
  await assert.rejects(p, /closed/);
  assert.equal(closed, 1);
  await assert.rejects(client.request('history'), /closed/);
});

test('filterToQuery and matchesFilter', () => {
  const f = { cellId: 'c1', errorsOnly: true, search: '  plot* ' };
  assert.deepEqual(filterToQuery(f, 50, 40), {
    limit: 50,
    cell_id: 'c1',
    status: 'error',
    search: 'plot*',
    before: 40
  });
  assert.deepEqual(
    filterToQuery({ cellId: null, errorsOnly: false, search: '' }, 10, null),
    {
      limit: 10
    }
  );
  const all = { cellId: null, errorsOnly: false, search: '' };
  assert.equal(matchesFilter(item(1), all), true);
  assert.equal(matchesFilter(item(1, { silent: true }), all), false);
  assert.equal(matchesFilter(item(1), { ...all, cellId: 'other' }), false);
  assert.equal(matchesFilter(item(1), { ...all, errorsOnly: true }), false);
  assert.equal(
    matchesFilter(item(1, { status: 'error' }), { ...all, errorsOnly: true }),
    true
  );
  assert.equal(matchesFilter(item(1), { ...all, search: 'x' }), false);
});

test('foldIntoSummary counts runs, errors, last and extremes', () => {
  let s = foldIntoSummary(undefined, item(1, { wall_ms: 30, peak_rss: 500 }));
  s = foldIntoSummary(
    s,
    item(2, { status: 'error', wall_ms: 10, peak_rss: 900 })
  );
  s = foldIntoSummary(s, item(3, { wall_ms: 20, peak_rss: null }));
  assert.equal(s.runs, 3);
  assert.equal(s.errors, 1);
  assert.equal(s.last_execution_id, 3);
  assert.equal(s.last_status, 'ok');
  assert.equal(s.last_wall_ms, 20);
  assert.equal(s.min_wall_ms, 10);
  assert.equal(s.max_wall_ms, 30);
  assert.equal(s.peak_rss, 900);
});

/** A fake service over a list of executions, paging like the kernel. */
function service(all: IHistoryItem[]) {
  return (req: Record<string, any>) => {
    switch (req.request) {
      case 'history': {
        let rows = all
          .filter(i => (req.cell_id ? i.cell_id === req.cell_id : true))
          .filter(i => (req.status ? i.status === req.status : true))
          .filter(i =>
            req.search ? i.code_preview.includes(req.search) : true
          )
          .filter(i => (req.before ? i.id < req.before : true))
          .sort((a, b) => b.id - a.id);
        const limit = req.limit ?? 50;
        const more = rows.length > limit;
        rows = rows.slice(0, limit);
        return ok(req, {
          items: rows,
          next_cursor: more ? rows[rows.length - 1].id : null
        });
      }
      case 'cells':
        return ok(req, [
          {
            cell_id: 'c1',
            runs: all.length,
            errors: 0,
            last_execution_id: all.length,
            last_status: 'ok',
            last_started_ms: 0,
            last_wall_ms: 10,
            peak_rss: 1
          }
        ]);
      case 'execution':
        return ok(req, {
          ...all.find(i => i.id === req.execution_id),
          code: 'x',
          outputs: [],
          samples: []
        });
      default:
        return ok(req, null);
    }
  };
}

const tick = () => new Promise(r => setImmediate(r));

test('the model pages through history newest first', async () => {
  const all = Array.from({ length: 120 }, (_, i) => item(i + 1));
  const { client } = connect(service(all));
  const model = new HistoryModel({ pageSize: 50 });
  await model.attach(client, HELLO);
  assert.equal(model.state, 'ready');
  assert.equal(model.items.length, 50);
  assert.equal(model.items[0].id, 120);
  assert.equal(model.hasMore, true);
  assert.equal(model.cells.get('c1')?.runs, 120);
  await model.loadMore();
  await model.loadMore();
  assert.equal(model.items.length, 120);
  assert.equal(model.items[119].id, 1);
  assert.equal(model.hasMore, false);
  await model.loadMore(); // nothing more, no request
  assert.equal(model.items.length, 120);
});

test('changing the filter reloads; a stale page is dropped', async () => {
  const all = [item(1), item(2, { status: 'error', cell_id: 'c2' }), item(3)];
  const { client } = connect(service(all));
  const model = new HistoryModel({ pageSize: 50 });
  await model.attach(client, HELLO);
  assert.equal(model.items.length, 3);
  model.setFilter({ errorsOnly: true });
  model.setFilter({ errorsOnly: true, cellId: 'c1' }); // supersedes the first
  await tick();
  await tick();
  assert.deepEqual(
    model.items.map(i => i.id),
    []
  );
  model.setFilter({ cellId: 'c2' });
  await tick();
  await tick();
  assert.deepEqual(
    model.items.map(i => i.id),
    [2]
  );
});

test('recorded events add runs live and update cell summaries', async () => {
  const all = [item(1), item(2)];
  const { client } = connect(service(all));
  const model = new HistoryModel();
  await model.attach(client, HELLO);
  let recorded = 0;
  model.runRecorded.connect(() => recorded++);
  const push = (i: IHistoryItem) =>
    client.handleMessage({
      event: 'recorded',
      protocol_version: 1,
      execution: i
    });
  push(item(3));
  assert.deepEqual(
    model.items.map(i => i.id),
    [3, 2, 1]
  );
  assert.equal(model.cells.get('c1')?.runs, 3);
  assert.equal(model.cells.get('c1')?.last_execution_id, 3);
  push(item(3)); // a duplicate is not listed twice
  assert.equal(model.items.length, 3);
  push(item(4, { notebook_path: '/p/other.ipynb' })); // another notebook
  push(item(5, { silent: true }));
  assert.deepEqual(
    model.items.map(i => i.id),
    [3, 2, 1]
  );
  model.setFilter({ errorsOnly: true });
  await tick();
  await tick();
  push(item(6));
  push(item(7, { status: 'error' }));
  assert.deepEqual(
    model.items.map(i => i.id),
    [7]
  );
  assert.equal(recorded, 4);
});

test('a recorded event without its row changes nothing', async () => {
  const { client } = connect(service([item(1)]));
  const model = new HistoryModel();
  await model.attach(client, HELLO);
  let recorded = 0;
  model.runRecorded.connect(() => recorded++);
  client.handleMessage({
    event: 'recorded',
    protocol_version: 1,
    execution: null
  });
  assert.deepEqual(
    model.items.map(i => i.id),
    [1]
  );
  assert.equal(recorded, 0);
});

test('the previous run of a cell: its link, else asked of the service', async () => {
  const all = [
    item(1),
    item(2, { cell_id: 'c2' }),
    item(3),
    item(4, { cell_id: 'c2' })
  ];
  const { client } = connect(service(all));
  const model = new HistoryModel();
  await model.attach(client, HELLO);
  // The session's previous run (2) is another cell's: not the one.
  const third = item(3, { prev_execution_id: 2 });
  assert.equal(await model.previousRunOf(third), 1);
  assert.equal(await model.previousRunOf(item(4, { cell_id: 'c2' })), 2);
  assert.equal(await model.previousRunOf(item(1)), null);
  assert.equal(model.isFirstRun(item(1)), true);
  assert.equal(model.isFirstRun(third), false);
  // Under a filter the list cannot tell: the service answers.
  model.setFilter({ errorsOnly: true });
  await tick();
  await tick();
  assert.equal(await model.previousRunOf(third), 1);
  assert.equal(await model.previousRunOf(item(1)), null);
  assert.equal(model.isFirstRun(third), false);
});

test('cell summaries carry the last run’s own memory', async () => {
  const mib = 2 ** 20;
  const all = [
    item(1, { rss_start: 300 * mib, peak_rss: 600 * mib, rss_delta: 280 * mib })
  ];
  const { client } = connect(service(all));
  const model = new HistoryModel();
  await model.attach(client, HELLO);
  const s = model.cells.get('c1');
  assert.equal(s?.last_rss_delta, 280 * mib);
  assert.equal(s?.last_peak_rss, 600 * mib);
  client.handleMessage({
    event: 'recorded',
    protocol_version: 1,
    execution: item(2, {
      rss_start: 580 * mib,
      peak_rss: 590 * mib,
      rss_delta: -5 * mib
    })
  });
  assert.equal(model.cells.get('c1')?.last_rss_delta, -5 * mib);
  assert.equal(model.cells.get('c1')?.last_rss_start, 580 * mib);
});

test('executions are cached; the comm closing puts the model in error', async () => {
  const all = [item(1)];
  const { client, transport } = connect(service(all));
  const model = new HistoryModel();
  await model.attach(client, HELLO);
  const before = transport.sent.length;
  const a = await model.execution(1);
  const b = await model.execution(1);
  assert.equal(a, b);
  assert.equal(transport.sent.length, before + 1);
  client.handleClose();
  assert.equal(model.state, 'error');
  await assert.rejects(model.execution(1), /not connected/);
});

test('setState without a kernel clears the list', async () => {
  const { client } = connect(service([item(1)]));
  const model = new HistoryModel();
  await model.attach(client, HELLO);
  model.setState('not-lineage', 'plain kernel', {
    name: 'python3-lineage',
    displayName: 'L'
  });
  assert.equal(model.items.length, 0);
  assert.equal(model.client, null);
  assert.equal(model.switchOffer?.name, 'python3-lineage');
});
