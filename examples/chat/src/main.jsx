import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { C1Chat } from "@thesysai/genui-sdk";
import "@crayonai/react-ui/styles/index.css";
import "@fontsource/inter/400.css";
import "@fontsource/inter/500.css";
import "@fontsource/inter/600.css";
import "@fontsource/inter/700.css";
import "./index.css";

// A local logo: C1Chat's default logoUrl is an image on thesys.dev, and this
// page must work with nothing but our own server.
const LOGO =
  "data:image/svg+xml," +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
      '<rect width="32" height="32" rx="8" fill="#009639"/>' +
      '<text x="16" y="22" font-size="16" font-family="sans-serif" ' +
      'text-anchor="middle" fill="#fff">C1</text></svg>',
  );

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <C1Chat
      apiUrl="/api/chat"
      formFactor="full-page"
      agentName="C1 via nginx"
      logoUrl={LOGO}
    />
  </StrictMode>,
);
