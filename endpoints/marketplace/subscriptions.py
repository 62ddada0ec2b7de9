"""Marketplace service family: publish/subscribe subscriptions (Subscribe, Unsubscribe,
ListSubscriptions).

Thin on purpose: decode, one unit of work, commit, encode. Rules live in domain/pubsub.py;
deliveries to the subscribed endpoints are made by ``gembus worker`` (bus/delivery.py).
"""

from __future__ import annotations

from typing import Any

from spyne import ComplexModel, DateTime, ServiceBase, Unicode, rpc

from domain.identifiers import OperatorId, ProviderId
from domain.marketplace.partners import parse_identifier
from domain.pubsub import Subscription, SubscriptionFilter, Topic
from domain.pubsub import list_subscriptions as list_uc
from domain.pubsub import subscribe as subscribe_uc
from domain.pubsub import unsubscribe as unsubscribe_uc
from endpoints.marketplace.catalogue import page_info, page_of, request_of
from endpoints.marketplace.messages import (
    MARKETPLACE_NS,
    AcknowledgementType,
    OperatorIdListType,
    PageInfoType,
    PageRequestType,
    ProviderIdListType,
)

ENERGY_NS = "urn:gembus:energy:v1"


class LoadAreaIdListType(ComplexModel):
    __namespace__ = ENERGY_NS
    _type_info = [("loadAreaId", Unicode(min_occurs=1, max_occurs=100))]


class CountryListType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [("country", Unicode(min_occurs=1, max_occurs=50))]


class SubscriptionFilterType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("operatorIds", OperatorIdListType),
        ("countries", CountryListType),
        ("providerIds", ProviderIdListType),
        ("loadAreaIds", LoadAreaIdListType),
    ]


class SubscriptionType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("subscriptionId", Unicode(min_occurs=1)),
        ("partnerId", Unicode(min_occurs=1)),
        ("topic", Unicode(min_occurs=1)),
        ("endpointUrl", Unicode(min_occurs=1)),
        ("filter", SubscriptionFilterType),
        ("status", Unicode(min_occurs=1)),
        ("createdAt", DateTime(min_occurs=1)),
    ]


def _filter_from(message: SubscriptionFilterType | None) -> SubscriptionFilter | None:
    if message is None:
        return None
    operators = list(message.operatorIds.operatorId) if message.operatorIds else []
    providers = list(message.providerIds.providerId) if message.providerIds else []
    return SubscriptionFilter(
        tuple(
            parse_identifier(OperatorId.parse, text, f"filter/operatorIds/operatorId[{i}]")
            for i, text in enumerate(operators, 1)
        ),
        tuple(message.countries.country) if message.countries else (),
        tuple(
            parse_identifier(ProviderId.parse, text, f"filter/providerIds/providerId[{i}]")
            for i, text in enumerate(providers, 1)
        ),
        tuple(message.loadAreaIds.loadAreaId) if message.loadAreaIds else (),
    )


def _filter_to(f: SubscriptionFilter | None) -> SubscriptionFilterType | None:
    if f is None:
        return None
    return SubscriptionFilterType(
        operatorIds=OperatorIdListType(operatorId=[o.wire for o in f.operator_ids])
        if f.operator_ids
        else None,
        countries=CountryListType(country=list(f.countries)) if f.countries else None,
        providerIds=ProviderIdListType(providerId=[p.wire for p in f.provider_ids])
        if f.provider_ids
        else None,
        loadAreaIds=LoadAreaIdListType(loadAreaId=list(f.load_area_ids))
        if f.load_area_ids
        else None,
    )


def subscription_to(s: Subscription) -> SubscriptionType:
    return SubscriptionType(
        subscriptionId=s.subscription_id,
        partnerId=s.partner_id,
        topic=s.topic.value,
        endpointUrl=s.endpoint_url,
        filter=_filter_to(s.filter),
        status=s.status.value,
        createdAt=s.created_at,
    )


class MarketplaceSubscriptions(ServiceBase):
    """Partners' subscriptions to gembus topics; events arrive by Notify at their endpoint."""

    @rpc(
        Unicode,
        Unicode,
        SubscriptionFilterType,
        _returns=SubscriptionType,
        _out_variable_name="subscription",
    )
    def Subscribe(
        ctx: Any, topic: str, endpointUrl: str, filter: SubscriptionFilterType | None
    ) -> SubscriptionType:
        request = request_of(ctx)
        with request.uow() as uow:
            subscription = subscribe_uc(
                uow, request.actor, Topic(topic), endpointUrl, _filter_from(filter), request.now()
            )
            uow.commit()
        return subscription_to(subscription)

    @rpc(Unicode, _returns=AcknowledgementType, _out_variable_name="acknowledgement")
    def Unsubscribe(ctx: Any, subscriptionId: str) -> AcknowledgementType:
        request = request_of(ctx)
        with request.uow() as uow:
            unsubscribe_uc(uow, request.actor, subscriptionId)
            uow.commit()
        return AcknowledgementType(messageId=request.message_id, processedAt=request.now())

    @rpc(
        Unicode,
        Unicode,
        PageRequestType,
        _returns=(SubscriptionType.customize(min_occurs=0, max_occurs=1000), PageInfoType),
        _out_variable_names=("subscription", "pageInfo"),
    )
    def ListSubscriptions(
        ctx: Any, partnerId: str | None, topic: str | None, paging: PageRequestType | None
    ) -> tuple[list[SubscriptionType], PageInfoType]:
        request = request_of(ctx)
        page = page_of(paging)
        with request.uow() as uow:
            found, total = list_uc(
                uow,
                request.actor,
                partnerId,
                Topic(topic) if topic else None,
                (page.offset, page.size),
            )
        return [subscription_to(s) for s in found], page_info(page, total)
