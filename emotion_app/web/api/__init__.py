"""The server's HTTP side: REST routes, the live WebSocket, the guard in front of every route, login
throttling and the event loop's watchdog."""
