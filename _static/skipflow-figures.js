// On a narrow screen a figure keeps its desktop size and scrolls sideways (skipflow.css). A figure that
// does not fit says so at the top of its caption, so a reader on a phone knows there is more to the right.
(() => {
  const mark = () => {
    for (const figure of document.querySelectorAll("main figure")) {
      const image = figure.querySelector(":scope > img");
      if (!image) continue;
      figure.classList.toggle("skipflow-scrolls", image.offsetWidth > figure.clientWidth + 1);
    }
  };
  window.addEventListener("load", mark);
  window.addEventListener("resize", mark);
})();
