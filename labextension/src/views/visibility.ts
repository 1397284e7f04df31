/**
 * Keep a model's polls running exactly while a widget is visible: attached and not hidden (a background tab,
 * a collapsed side bar). Lumino sends `after-show` only on a hidden -> shown change, so a widget attached while
 * already visible is caught on `after-attach`.
 */

import { IDisposable } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

export class VisibleWatch implements IDisposable {
  private held: IDisposable[] | null = null;
  private disposed = false;

  constructor(private widget: Widget, private start: () => IDisposable[]) {}

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Call from onAfterAttach, onAfterShow, onAfterHide and onBeforeDetach (with `detaching`). */
  update(detaching = false): void {
    const visible = !detaching && !this.disposed && this.widget.isVisible;
    if (visible && !this.held) {
      this.held = this.start();
    } else if (!visible && this.held) {
      this.held.forEach(watch => watch.dispose());
      this.held = null;
    }
  }

  dispose(): void {
    this.update(true);
    this.disposed = true;
  }
}
