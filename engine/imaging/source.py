"""Who hands telerad an instance: a DICOM device, a user or an OAuth client — always for one institution (issue 12
§2; REQ: DSEC-03: the owning institution comes from the sender, never from tags such as InstitutionName).

The receive service (engine/imaging/receive.py) stamps the index rows with it, audits under its actor and lets
routing rules look at it; the same rules hold whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.actor import Actor
from engine.imaging.services import NodeInfo

DEVICE, USER, CLIENT = "device", "user", "client"


@dataclass(frozen=True)
class Source:
    """The sender of received instances and the institution that owns them.

    `via` names the way in, recorded in the audit log: c-store (also C-MOVE sub-operations, which arrive as
    C-STOREs), c-get (telerad's own retrieval), stow-rs, upload.
    """

    kind: str  # DEVICE | USER | CLIENT
    institution_id: int
    actor: Actor  # who the audit log names: dicom:<AET>, the user, or oauth:<client id>
    via: str
    node: NodeInfo | None = None  # DEVICE only

    @classmethod
    def device(cls, node: NodeInfo, ip: str | None, via: str) -> Source:
        """A registered DICOM device (its institution is the device's)."""
        return cls(DEVICE, node.institution_id, node.actor(ip), via, node)

    @classmethod
    def user(cls, actor: Actor, via: str, institution_id: int | None = None) -> Source:
        """A signed-in user (e.g. a browser upload); the institution is the user's unless the caller, having
        checked the user may act for another, names it.

        Raises:
            ValueError: the actor is not a user with an institution.
        """
        institution = institution_id if institution_id is not None else actor.institution_id
        if actor.user_id is None or institution is None:
            raise ValueError("a user source needs a signed-in user and an institution")
        return cls(USER, institution, actor, via)

    @classmethod
    def client(cls, client_id: str, institution_id: int, institution_code: str, ip: str | None, via: str) -> Source:
        """An OAuth client (e.g. STOW-RS from a hospital system) registered for one institution."""
        actor = Actor(
            user_id=None,
            username=f"oauth:{client_id}",
            institution_id=institution_id,
            institution_code=institution_code,
            ip=ip,
        )
        return cls(CLIENT, institution_id, actor, via)

    @property
    def node_id(self) -> int | None:
        return self.node.id if self.node is not None else None

    @property
    def calling_aet(self) -> str:
        """The AE title recorded on the rows: the device's; empty for users and clients."""
        return self.node.aet if self.node is not None else ""

    @property
    def name(self) -> str:
        """How messages name the sender: the AE title, the username or oauth:<client id>."""
        return self.node.aet if self.node is not None else str(self.actor.username or "")

    @property
    def ip(self) -> str | None:
        return self.actor.ip

    @property
    def audit_object(self) -> tuple[str, str | int | None]:
        """(object_type, object_id) of refusals: the device, the user or the client."""
        if self.node is not None:
            return "dicom_node", self.node.id
        if self.kind == USER:
            return "user", self.actor.user_id
        return "oauth_client", self.actor.username
