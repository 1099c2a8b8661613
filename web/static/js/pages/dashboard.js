import "../layout.js";
