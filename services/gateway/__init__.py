"""The HTTP gateway and API: custody banks push here, desks and admins read and configure here."""
