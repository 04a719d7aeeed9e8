// vqstudy book: a click on a figure opens it at full size (useful on a phone, where the column is narrow).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("article .cell_output img, article figure img").forEach((img) => {
    if (img.closest("a")) return;
    const link = document.createElement("a");
    link.href = img.getAttribute("src");
    link.className = "vq-enlarge";
    link.title = "Open the figure at full size";
    img.parentNode.insertBefore(link, img);
    link.appendChild(img);
  });
});
