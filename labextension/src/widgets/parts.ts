/**
 * Parts shared by the run and compare views: a section heading, a React
 * part inside a Lumino panel, a read-only editor, an output area of stored
 * outputs, and the load-then-build life of a view.
 */
import {
  CodeEditor,
  CodeEditorWrapper,
  IEditorServices
} from '@jupyterlab/codeeditor';
import * as nbformat from '@jupyterlab/nbformat';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';
import { errorText } from '../format';
import { IHistoryItem, IHistoryModel, IStoredOutput } from '../tokens';

/** What the run and compare views' buttons do. */
export interface IViewActions {
  restore(model: IHistoryModel, item: IHistoryItem): void;
  compareWithPrevious(model: IHistoryModel, item: IHistoryItem): void;
  goToCell(model: IHistoryModel, cellId: string): void;
}

/** A section heading inside a view. */
export function section(text: string): Widget {
  const w = new Widget();
  w.addClass('jp-LineageSection');
  w.node.textContent = text;
  return w;
}

/** A React-rendered part of a view (the rest of a view is Lumino). */
export class ReactPart extends ReactWidget {
  constructor(private readonly _render: () => JSX.Element) {
    super();
  }
  protected render(): JSX.Element {
    return this._render();
  }
}

/** A read-only editor showing `code` with the given MIME type. */
export function readOnlyEditor(
  editorServices: IEditorServices,
  code: string,
  mimeType: string
): CodeEditorWrapper {
  const model = new CodeEditor.Model({ mimeType });
  model.sharedModel.setSource(code);
  const editor = new CodeEditorWrapper({
    factory: editorServices.factoryService.newInlineEditor,
    model,
    editorOptions: {
      config: { readOnly: true, lineNumbers: true, lineWrap: false }
    }
  });
  editor.addClass('jp-LineageCode');
  editor.disposed.connect(() => model.dispose());
  return editor;
}

/**
 * An output area holding stored outputs. Past outputs are rendered
 * untrusted: HTML is sanitised and scripts do not run, as for a notebook
 * opened from disk that the user has not trusted.
 */
export function storedOutputArea(
  rendermime: IRenderMimeRegistry,
  outputs: readonly IStoredOutput[]
): OutputArea {
  const model = new OutputAreaModel({ trusted: false });
  model.fromJSON(outputs.map(o => o.output as unknown as nbformat.IOutput));
  const area = new OutputArea({ model, rendermime });
  area.addClass('jp-LineageOutputs');
  area.disposed.connect(() => model.dispose());
  return area;
}

/** Views made so far, to give each a unique id. */
let viewCount = 0;

/**
 * A view that shows a banner while it loads, then builds its parts; on a
 * failure the banner says why. `ready` resolves either way.
 */
export class LoadingView extends Panel {
  constructor(options: LoadingView.IOptions) {
    super();
    this.addClass(options.className);
    this.id = `${options.idPrefix}-${viewCount++}`;
    this.title.label = options.label;
    this.title.closable = true;
    this._banner = new Widget();
    this._banner.node.textContent = options.loadingText;
    this._banner.addClass('jp-LineageBanner');
    this.addWidget(this._banner);
  }

  readonly ready: Promise<void> = new Promise(r => (this._resolveReady = r));

  /**
   * Run `build` (which adds the view's parts once its data is in); on an
   * error, say `failText: <why>` in the banner.
   */
  protected start(build: () => Promise<void>, failText: string): void {
    void (async () => {
      try {
        await build();
        if (!this.isDisposed) {
          this._banner.dispose();
        }
      } catch (err) {
        this._banner.node.textContent = `${failText}: ${errorText(err)}`;
        this._banner.addClass('jp-mod-error');
      } finally {
        this._resolveReady();
      }
    })();
  }

  private _banner: Widget;
  private _resolveReady!: () => void;
}

export namespace LoadingView {
  export interface IOptions {
    className: string;
    idPrefix: string;
    label: string;
    loadingText: string;
  }
}
