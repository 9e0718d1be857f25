import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { C1Chat, useThreadListManager, useThreadManager } from "@thesysai/genui-sdk";
import "@crayonai/react-ui/styles/index.css";
import "@fontsource/inter/400.css";
import "@fontsource/inter/500.css";
import "@fontsource/inter/600.css";
import "@fontsource/inter/700.css";
import "./index.css";
import * as api from "./threads.js";

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

// The threads live in nginx (c1_history_zone), listed, renamed, deleted and
// loaded through the module's thread API (src/threads.js); each turn is
// still a POST of the newest message to /api/chat.
function App() {
  const threadListManager = useThreadListManager({
    fetchThreadList: api.fetchThreadList,
    createThread: api.createThread,
    updateThread: api.updateThread,
    deleteThread: api.deleteThread,
    onSwitchToNew: () => {},
    onSelectThread: () => {},
  });
  const threadManager = useThreadManager({
    threadListManager,
    loadThread: api.loadThread,
    apiUrl: "/api/chat",
    onUpdateMessage: ({ message }) => {
      api
        .updateMessage(threadListManager.selectedThreadId, message)
        .catch((e) => console.error(`the message was not saved: ${e.message}`));
    },
  });
  return (
    <C1Chat
      threadListManager={threadListManager}
      threadManager={threadManager}
      formFactor="full-page"
      agentName="C1 via nginx"
      logoUrl={LOGO}
    />
  );
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
