// The page-contents button in the article header opens the theme's contents drawer. The theme
// (pydata-sphinx-theme) listens only on the first such button on the page, the top bar's,
// which sphinx-book-theme hides, so without this the button does nothing. A link followed in
// the drawer closes it.
document.addEventListener("DOMContentLoaded", () => {
  const bound = document.querySelector(".secondary-toggle");
  const drawer = document.getElementById("pst-secondary-sidebar-modal");
  if (!bound || !drawer) {
    return;
  }
  document.querySelectorAll(".bd-header-article .secondary-toggle").forEach((button) => {
    if (button !== bound) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        bound.click();
      });
    }
  });
  drawer.addEventListener("click", (event) => {
    if (event.target.closest("a[href]")) {
      drawer.close();
    }
  });
});
