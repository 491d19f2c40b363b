// A figure keeps its desktop size on a narrow screen and scrolls sideways (skipflow.css); so does a table
// wider than its column. Each box that does not fit gets the class "skipflow-scrolls", and the style sheet
// then says so (at the top of a figure's caption, above a table), so a reader knows there is more to see.
(() => {
  const mark = () => {
    for (const figure of document.querySelectorAll("main figure")) {
      const image = figure.querySelector(":scope > img");
      if (!image) continue;
      figure.classList.toggle("skipflow-scrolls", image.offsetWidth > figure.clientWidth + 1);
    }
    for (const box of document.querySelectorAll("main div.skipflow-table, main .pst-scrollable-table-container")) {
      box.classList.toggle("skipflow-scrolls", box.scrollWidth > box.clientWidth + 1);
    }
  };
  window.addEventListener("load", mark);
  window.addEventListener("resize", mark);
})();
