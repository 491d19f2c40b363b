// Search results quote a snippet of each page's text. The page's math is TeX source until MathJax typesets
// it, so a snippet would read "\(\partial\L/\partial h_{l-1}\)". This turns the math in a snippet into
// plain text ("∂ℒ/∂h_(l-1)") before Sphinx's search shows it. Loaded on every page; it acts only where Sphinx's
// search (searchtools.js) is.
"use strict";

const SKIPFLOW_TEX_SYMBOLS = {
  alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε", eta: "η", theta: "θ",
  lambda: "λ", mu: "μ", nu: "ν", pi: "π", rho: "ρ", sigma: "σ", tau: "τ", phi: "φ", varphi: "φ",
  psi: "ψ", omega: "ω", Gamma: "Γ", Delta: "Δ", Theta: "Θ", Lambda: "Λ", Sigma: "Σ", Phi: "Φ",
  Psi: "Ψ", Omega: "Ω", partial: "∂", nabla: "∇", ell: "ℓ", L: "ℒ", infty: "∞", sum: "Σ", prod: "Π",
  cdot: "·", times: "×", odot: "⊙", circ: "∘", le: "≤", leq: "≤", ge: "≥", geq: "≥", ne: "≠",
  neq: "≠", approx: "≈", sim: "~", propto: "∝", to: "→", rightarrow: "→", mapsto: "↦", in: "∈",
  top: "ᵀ", prime: "′", sqrt: "√", Vert: "‖", lVert: "‖", rVert: "‖", "|": "‖", langle: "⟨", rangle: "⟩",
  ldots: "…", cdots: "⋯", quad: " ", qquad: " ", ",": " ", ";": " ", "!": "", log: "log",
  exp: "exp", max: "max", min: "min", det: "det", operatorname: "", mathcal: "", mathrm: "",
  mathbf: "", boldsymbol: "", text: "", mathbb: "", left: "", right: "", big: "", Big: "",
  bigl: "", bigr: "", Bigl: "", Bigr: "", displaystyle: "",
};

const SKIPFLOW_SCRIPT_CAPITALS = "𝒜ℬ𝒞𝒟ℰℱ𝒢ℋℐ𝒥𝒦ℒℳ𝒩𝒪𝒫𝒬ℛ𝒮𝒯𝒰𝒱𝒲𝒳𝒴𝒵";

/** Plain text for one piece of TeX: symbols as Unicode, fractions as a/b, grouping braces dropped. */
function skipflowTexToText(tex) {
  let text = tex.replace(/\\mathcal\s*\{\s*([A-Z])\s*\}/g, (m, letter) =>
    [...SKIPFLOW_SCRIPT_CAPITALS][letter.charCodeAt(0) - 65]);
  for (let i = 0; i < 4; i++) {  // nested fractions, innermost first
    text = text.replace(/\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}/g, "$1/$2");
  }
  text = text.replace(/\\([A-Za-z]+|[|,;!])/g, (match, name) =>
    name in SKIPFLOW_TEX_SYMBOLS ? SKIPFLOW_TEX_SYMBOLS[name] : name);
  text = text.replace(/\^\{?′\}?/g, "′");
  text = text.replace(/([_^])\{([^{}]{2,})\}/g, "$1($2)");  // h_{l-1} -> h_(l-1)
  return text.replace(/[{}]/g, "").replace(/\s+/g, " ").trim();
}

/** The text of a page with every \( \), \[ \] and $$ $$ span of TeX turned into plain text. */
function skipflowPlainMath(text) {
  return text
    .replace(/\\\(([\s\S]*?)\\\)/g, (m, tex) => skipflowTexToText(tex))
    .replace(/\\\[([\s\S]*?)\\\]/g, (m, tex) => " " + skipflowTexToText(tex) + " ")
    .replace(/\$\$([\s\S]*?)\$\$/g, (m, tex) => " " + skipflowTexToText(tex) + " ");
}

document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search === "undefined" || typeof Search.htmlToText !== "function") return;
  const pageText = Search.htmlToText;
  Search.htmlToText = (html, anchor) => skipflowPlainMath(pageText(html, anchor));
});
