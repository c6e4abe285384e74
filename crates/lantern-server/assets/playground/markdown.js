// A small Markdown renderer for untrusted model output: it builds DOM nodes and sets only
// textContent, so no text the model writes can become HTML. Fenced code blocks, inline code,
// **bold**, *italic* and paragraphs; everything else stays as text.

function inline(parent, text) {
  const pattern = /(`[^`\n]+`|\*\*[^*\n]+\*\*|\*[^*\n]+\*)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
    const token = match[0];
    let node;
    if (token.startsWith("`")) {
      node = document.createElement("code");
      node.textContent = token.slice(1, -1);
    } else if (token.startsWith("**")) {
      node = document.createElement("strong");
      node.textContent = token.slice(2, -2);
    } else {
      node = document.createElement("em");
      node.textContent = token.slice(1, -1);
    }
    parent.append(node);
    last = match.index + token.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

/** Renders `text` into `target`, replacing what it held. */
export function render(target, text) {
  target.replaceChildren();
  const parts = text.split(/^```/m);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      // A fenced block: the first line names the language.
      const newline = part.indexOf("\n");
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = newline < 0 ? "" : part.slice(newline + 1).replace(/\n$/, "");
      const lang = (newline < 0 ? part : part.slice(0, newline)).trim();
      if (lang) code.dataset.lang = lang;
      pre.append(code);
      target.append(pre);
      return;
    }
    for (const para of part.split(/\n{2,}/)) {
      if (!para.trim()) continue;
      const p = document.createElement("p");
      inline(p, para.replace(/^\n+|\n+$/g, ""));
      target.append(p);
    }
  });
}
