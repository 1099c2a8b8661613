// Pages with no behaviour of their own still get the shared layout (log out, local times).
import "../layout.js";
