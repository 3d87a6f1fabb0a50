/**
 * "Record every kernel": runs `jupyter lineage enable --user` for the user
 * (the wheel's `lineage-provisioner` then starts every kernel behind the
 * proxy, under its own name), then starts a new kernel for the notebook, so
 * that it is recorded too. A running kernel keeps the provisioner that
 * started it: only a new one is recorded.
 *
 * There is no server extension to run the command, so the notebook's own
 * kernel runs it, silently and without history, with the interpreter it
 * runs on (`python -m jupyter_lineage`, the environment the kernelspec
 * belongs to). For kernels in other languages the user gets the command to
 * run in a terminal.
 */
import type { ISessionContext } from '@jupyterlab/apputils';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { KernelMessage } from '@jupyterlab/services';

/** What the user runs by hand when the kernel cannot run it. */
export const ENABLE_COMMAND = 'jupyter lineage enable --user';

/** Marks the command's result among the kernel's output. */
const MARKER = '__jupyter_lineage_enable__';

/** Python that runs the command and prints its exit status after MARKER. */
export const ENABLE_CODE = [
  'import subprocess as _s, sys as _y',
  '_r = _s.run([_y.executable, "-m", "jupyter_lineage", "enable", "--user"], capture_output=True, text=True)',
  `print(_r.stdout + _r.stderr + "${MARKER}" + str(_r.returncode))`,
  'del _s, _y, _r'
].join('\n');

/** The exit status and output printed by ENABLE_CODE, if it got that far. */
export function parseEnableOutput(
  text: string
): { ok: boolean; output: string } | null {
  const at = text.lastIndexOf(MARKER);
  if (at < 0) {
    return null;
  }
  const status = text.slice(at + MARKER.length).trim();
  return { ok: status === '0', output: text.slice(0, at).trim() };
}

/**
 * Asks, enables for the user, and starts a new kernel of the same name.
 * Resolves to a message for the user; rejects with why it failed.
 */
export async function recordEveryKernel(
  sessionContext: ISessionContext
): Promise<string | null> {
  const kernel = sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error('the notebook has no kernel');
  }
  const info = await kernel.info;
  if (info.language_info?.name !== 'python') {
    return (
      `Run \`${ENABLE_COMMAND}\` in a terminal, then start a new kernel ` +
      '(Kernel › Change Kernel…): every kernel is recorded from then on.'
    );
  }
  const answer = await showDialog({
    title: 'Record every kernel',
    body:
      'Every kernel you start from now on is recorded, under its own name ' +
      `(\`${ENABLE_COMMAND}\`; \`jupyter lineage disable --user\` undoes it). ` +
      'This notebook then gets a new kernel: its variables are lost.',
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: 'Record every kernel' })
    ]
  });
  if (!answer.button.accept) {
    return null;
  }
  let text = '';
  const future = kernel.requestExecute({
    code: ENABLE_CODE,
    silent: false,
    store_history: false,
    allow_stdin: false
  });
  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    if (msg.header.msg_type === 'stream') {
      text += (msg.content as KernelMessage.IStreamMsg['content']).text;
    }
  };
  await future.done;
  const result = parseEnableOutput(text);
  if (!result) {
    throw new Error(`the kernel could not run \`${ENABLE_COMMAND}\``);
  }
  if (!result.ok) {
    throw new Error(`\`${ENABLE_COMMAND}\` failed: ${result.output}`);
  }
  await sessionContext.changeKernel({ name: kernel.name });
  const warnings = result.output
    .split('\n')
    .filter(line => line.startsWith('warning:'));
  return warnings.length
    ? `Recording turned on, with warnings: ${warnings.join(' ')}`
    : 'Every kernel is recorded from now on; this notebook has a new kernel.';
}
