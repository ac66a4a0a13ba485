// Latent Lab: the presenter's keys (a Streamlit components v2 module; see ui/presenter.py).
// One keydown listener on the page's document: arrows move z, space samples, b / B move beta along a sweep.
// Keys typed into an input, a text area, a select box or an editable element are left alone, and so are
// keys on the in-browser decoder's own pad and sliders (they move z themselves).

const KEYS = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down", " ": "sample",
               b: "beta_next", B: "beta_previous" };

function typing(target) {
  if (!target || !target.closest) return false;
  if (target.isContentEditable) return true;
  return !!target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true'], " +
                          "[role='slider'], [role='application'], [role='combobox'], [role='textbox']");
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".pv-root");
  if (root && data) {
    root.textContent = data.message || "";
    root.dataset.count = String(data.count ?? 0);
  }
  const state = (globalThis.__latentLabPresenter ??= { n: 0 });
  state.send = setTriggerValue;      // the newest mount's trigger
  if (!state.listening) {
    state.listening = true;
    document.addEventListener("keydown", e => {
      const action = KEYS[e.key];
      if (!action || e.ctrlKey || e.metaKey || e.altKey || e.repeat && action.startsWith("beta")) return;
      if (typing(e.target) || !document.querySelector(".pv-root")) return;
      e.preventDefault();
      state.n += 1;
      state.send("key", { action, n: state.n });
    });
  }
}
